"""``track_samples`` shows FiftyOne's progress bar over the frames (like ``apply_model``), or calls a callback."""

import fiftyone as fo
import pytest

from samtrack_ops.fiftyone import track_samples
from samtrack_ops.prompts import Click


@pytest.fixture(scope="module")
def models_on_cpu(sam_vit_b_random_ckpt, r50_deaotl_ckpt):
    """Prebuilt random-weight SAM ViT-B and R50-DeAOT-L, shared by the runs below."""
    from samtrack_ops.segmentor import load_segmentor
    from samtrack_ops.tracker import load_tracker

    return {"segmentor": load_segmentor("vit_b", sam_vit_b_random_ckpt, "cpu"),
            "tracker": load_tracker("r50_deaotl", r50_deaotl_ckpt, "cpu")}


@pytest.fixture
def one_video(small_videos):
    """One 4-frame 428x240 video (blackswan) with metadata; the runs track 1 or 2 of its frames."""
    dataset = fo.Dataset()
    dataset.add_sample(fo.Sample(filepath=str(small_videos["blackswan"])))
    dataset.compute_metadata()
    yield dataset
    dataset.delete()


SWAN = [Click(frame=0, points=[(264, 131)], labels=[1], label="swan")]


def test_progress_bar_by_default_counts_frames_and_shows_the_stage(one_video, models_on_cpu, capsys):
    assert fo.config.show_progress_bars  # FiftyOne's default, which track_samples follows like apply_model
    track_samples(one_video, SWAN, "tracks", frame_range=(0, 2), **models_on_cpu)
    output = capsys.readouterr().out
    assert "2/2" in output and "frames/s" in output
    assert "samtrack: tracking forward from frame index 0\n" in output  # each stage: a line above the bar


def test_progress_callback_instead_of_a_bar_and_off_switch(one_video, models_on_cpu, capsys):
    seen = []
    track_samples(one_video, SWAN, "tracks", progress=lambda bar: seen.append((bar.iteration, bar.total, bar.stage)),
                  frame_range=(0, 2), **models_on_cpu)
    assert "frames/s" not in capsys.readouterr().out  # a callback replaces the bar
    iterations = [iteration for iteration, _, _ in seen]
    assert iterations == sorted(iterations) and set(iterations) == {0, 1, 2}  # once per frame, in order
    assert {total for _, total, _ in seen} == {2}  # the frames of frame_range, not of the video
    stages = list(dict.fromkeys(stage for _, _, stage in seen))
    assert stages == [f"tracking {one_video.first().filepath}",
                      "key frame index 0: SAM embedding and masks for 1 prompt(s)",
                      "tracking forward from frame index 0"]

    track_samples(one_video, SWAN, "tracks", progress=False, frame_range=(0, 1), **models_on_cpu)
    assert "frames" not in capsys.readouterr().out
