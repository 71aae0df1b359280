"""The ``track_objects`` form: key frame numbers and the advanced options (no model runs)."""

import fiftyone.operators as foo
import pytest

TRACK = "@samtrack/samtrack/track_objects"


def test_key_frame_zero_is_refused_not_read_as_frame_one(video_dataset):
    from plugin.tracking import InputProblem, form_to_run

    with pytest.raises(InputProblem, match="prompt frame numbers start at 1"):
        form_to_run({"prompt_frame": 0, "clicks": [{"x": 10, "y": 10}]})
    assert form_to_run({"prompt_frame": 2, "clicks": [{"x": 10, "y": 10}]})["prompts"][0]["frame"] == 1
    assert form_to_run({"clicks": [{"x": 10, "y": 10}]})["prompts"][0]["frame"] == 0  # empty field: frame 1
    params = {"target": "DATASET", "prompt_frame": 0, "clicks": [{"x": 10, "y": 10}]}
    with pytest.raises(Exception, match="prompt frame numbers start at 1"):
        foo.execute_operator(TRACK, ctx={"dataset": video_dataset, "params": params})


def test_advanced_options_reach_the_run():
    from plugin.tracking import form_to_run

    params = {"mode": "automatic", "text": "swan", "advanced": True, "detector_model": "groundingdino_swinb",
              "box_threshold": 0.4, "text_threshold": 0.3, "long_term_mem_gap": 50, "max_len_long_term": 4,
              "generator_options": '{"points_per_side": 8}'}
    options = form_to_run(params)["options"]
    assert options["auto_text"] == "swan" and options["detector_model"] == "groundingdino_swinb"
    assert (options["box_threshold"], options["text_threshold"]) == (0.4, 0.3)
    assert (options["long_term_mem_gap"], options["max_len_long_term"]) == (50, 4)
    assert options["generator_options"] == {"points_per_side": 8}
    assert "box_threshold" not in form_to_run({**params, "advanced": False})["options"]  # hidden: defaults


@pytest.mark.parametrize("text, problem", [("{points_per_side: 8", "not valid JSON"), ("[8]", "must be a JSON object")])
def test_bad_generator_options_are_named(text, problem):
    from plugin.tracking import InputProblem, form_to_run

    with pytest.raises(InputProblem, match=problem):
        form_to_run({"mode": "automatic", "advanced": True, "generator_options": text})
