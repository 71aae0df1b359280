"""The main job (``python -m samtrack_ops.cli``, what ``./run.sh`` runs), as a real subprocess.

Bad input must end in exit status 2 with a message naming the problem, before any model is built and
without leaving anything in the database; runs use random weights on clips of a few frames.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from conftest import write_mp4

NOTHING_BUILT = "RANDOM model weights"  # printed when --random-weights writes its checkpoints


class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args, cache_dir, env=None, timeout=600):
    """Runs the CLI with an empty checkpoint cache and the test session's FiftyOne settings.

    Output goes to files, not pipes: a FiftyOne database service started by the CLI outlives it and
    would keep a pipe open.
    """
    env = {**os.environ, "SAMTRACK_CACHE_DIR": str(cache_dir), **(env or {})}
    env.pop("SAMTRACK_TEXT_ENCODER", None)
    logs = Path(cache_dir).parent / f"cli-{os.getpid()}-{len(args)}"
    with open(f"{logs}.out", "w+") as out, open(f"{logs}.err", "w+") as err:
        result = subprocess.run([sys.executable, "-m", "samtrack_ops.cli", *map(str, args)], env=env,
                                stdout=out, stderr=err, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return CliResult(result.returncode, out.read(), err.read())


def assert_refused(result, problem):
    """Exit 2, the problem named, no traceback, no model built."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert problem in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert NOTHING_BUILT not in result.stderr and "loading SAM" not in result.stderr
    assert result.stdout == ""


@pytest.fixture(scope="module")
def tiny_clip(davis_frames, tmp_path_factory):
    """blackswan's first 5 frames at 428x240 (swan around 264,131): Path of an mp4."""
    frames = np.stack([cv2.resize(f, (428, 240), interpolation=cv2.INTER_AREA) for f in davis_frames("blackswan", 5).frames])
    return write_mp4(frames, tmp_path_factory.mktemp("cli_clip") / "swan.mp4")


@pytest.fixture
def fresh_dataset_name(request):
    """A dataset name no test used; the dataset is deleted afterwards if a test made it."""
    import fiftyone as fo

    name = f"cli-{request.node.name}"[:60]
    yield name
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


# --- missing checkpoints ---------------------------------------------------------------------------


def test_missing_weights_stop_before_work_with_exact_instructions(tmp_path, tiny_clip):
    result = run_cli("--video", tiny_clip, "--text", "swan", "--no-download", cache_dir=tmp_path / "cache")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = result.stderr
    for file_name, url_part, flag in [
        ("sam_vit_b_01ec64.pth", "dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth", "--sam-checkpoint"),
        ("R50_DeAOTL_PRE_YTB_DAV.pth", "1QoChMkTVxdYZ_eBlZhK2acq9KMQZccPJ", "--tracker-checkpoint"),
        ("groundingdino_swint_ogc.pth", "IDEA-Research/GroundingDINO/releases", "--detector-checkpoint"),
    ]:
        assert f"file:      {file_name}" in message
        assert url_part in message
        assert f"put it at: {tmp_path / 'cache' / file_name}" in message
        assert f"{flag} PATH" in message
    assert "SAMTRACK_CACHE_DIR" in message


def test_automatic_mode_needs_no_detector(tmp_path):
    result = run_cli("--no-download", "--tracker-model", "deaott", cache_dir=tmp_path)
    assert result.returncode == 2
    assert "DeAOTT_PRE_YTB_DAV.pth" in result.stderr and "sam_vit_b_01ec64.pth" in result.stderr
    assert "groundingdino" not in result.stderr


def test_explicit_checkpoint_that_does_not_exist(tmp_path, tiny_clip):
    result = run_cli("--no-download", "--video", tiny_clip, "--sam-checkpoint", tmp_path / "mine.pth", cache_dir=tmp_path)
    assert result.returncode == 2
    assert f"--sam-checkpoint points at {tmp_path / 'mine.pth'}, which is not a file" in result.stderr


def test_failing_before_the_models_creates_no_cache_folder(tmp_path):
    """Downloads are allowed, but a missing video stops the run before any checkpoint is looked up."""
    env = {"HOME": str(tmp_path / "home")}
    result = run_cli("--video", tmp_path / "nope.mp4", cache_dir=tmp_path / "unused",
                     env={**env, "SAMTRACK_CACHE_DIR": ""})
    assert_refused(result, f"--video {tmp_path / 'nope.mp4'}: no such file")
    assert not (tmp_path / "home" / ".cache" / "samtrack").exists()


# --- bad arguments: exit 2 and a message, before any model or dataset ------------------------------


@pytest.mark.parametrize("args, problem", [
    (["--box", "1,2,3"], "--box wants four numbers"),
    (["--box", "10,10,5,5"], "empty or inverted"),
    (["--click", "10,20,x"], "--click wants X,Y or X,Y,+"),
    (["--click", "10"], "--click wants X,Y[,+|-]"),
    (["--click", "10,20,-"], "needs at least one positive point"),
    (["--click", "5000,20"], "outside the 428x240 frame"),
    (["--label", "swan"], "--label 'swan' names no object"),
    (["--frames", "5:2", "--click", "10,20"], "--frames wants FIRST:LAST"),
    (["--frames", "9:", "--click", "10,20"], "--frames starts at frame 9, but"),
    (["--max-frames", "0"], "argument --max-frames: wants a whole number of at least 1"),
    (["--label-field", "my tracks", "--click", "10,20"], "--label-field: label field 'my tracks' must be a plain"),
    (["--mode", "automatic", "--box", "1,2,30,40"], "--mode automatic finds objects by itself and takes no --box"),
    (["--mode", "interactive"], "--mode interactive needs prompts"),
    (["--device", "gpu"], "--device 'gpu' is not a device name"),
    (["--device", "cuda:7"], "CUDA GPU(s) here"),
    (["--sam-checkpoint", "x.pth"], "--random-weights writes its own checkpoints"),
])
def test_bad_arguments(tmp_path, tiny_clip, fresh_dataset_name, args, problem, capfd, monkeypatch):
    """In-process ``main`` (the same code path, without a new interpreter per case)."""
    import fiftyone as fo

    from samtrack_ops.cli import main

    monkeypatch.setenv("SAMTRACK_CACHE_DIR", str(tmp_path / "cache"))
    try:
        code = main(["--random-weights", "--video", str(tiny_clip), "--dataset", fresh_dataset_name, *args])
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    out, err = capfd.readouterr()
    assert_refused(CliResult(code, out, err), problem)
    assert not fo.dataset_exists(fresh_dataset_name)
    assert not (tmp_path / "cache").exists()


def test_missing_video_file_is_reported(tmp_path):
    result = run_cli("--random-weights", "--video", tmp_path / "nope.mp4", cache_dir=tmp_path)
    assert_refused(result, f"--video {tmp_path / 'nope.mp4'}: no such file")


def test_a_file_that_is_not_a_video_leaves_nothing_behind(tmp_path, fresh_dataset_name):
    import fiftyone as fo

    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("these are my notes, not a video\n")
    result = run_cli("--random-weights", "--video", not_a_video, "--dataset", fresh_dataset_name,
                     cache_dir=tmp_path / "cache")
    assert_refused(result, f"--video {not_a_video}: not a video samtrack can read")
    assert not fo.dataset_exists(fresh_dataset_name)


def _fake_checkpoints(tmp_path):
    """Explicit checkpoint options naming empty files: found, but loading them would fail loudly."""
    for name in ("sam.pth", "deaot.pth"):
        (tmp_path / name).write_bytes(b"")
    return ["--no-download", "--sam-checkpoint", tmp_path / "sam.pth", "--tracker-checkpoint", tmp_path / "deaot.pth"]


def test_a_failed_run_removes_the_dataset_it_created(tmp_path, tiny_clip, fresh_dataset_name):
    import fiftyone as fo

    result = run_cli(*_fake_checkpoints(tmp_path), "--video", tiny_clip, "--dataset", fresh_dataset_name,
                     "--click", "500,20", cache_dir=tmp_path / "cache")
    assert_refused(result, "outside the 428x240 frame")
    assert not fo.dataset_exists(fresh_dataset_name)


def test_a_failed_run_keeps_everything_of_an_existing_dataset(tmp_path, tiny_clip, fresh_dataset_name, blackswan_mp4):
    import fiftyone as fo

    mine = fo.Dataset(fresh_dataset_name, persistent=True)
    mine.add_sample(fo.Sample(filepath=str(blackswan_mp4), note="mine"))
    mine.compute_metadata()
    sample = mine.first()
    sample.frames[1]["tracks"] = fo.Detections(detections=[fo.Detection(label="mine", bounding_box=[0, 0, .5, .5])])
    sample.save()
    result = run_cli(*_fake_checkpoints(tmp_path), "--video", tiny_clip, "--dataset", fresh_dataset_name,
                     "--click", "500,20", cache_dir=tmp_path / "cache")
    assert_refused(result, "outside the 428x240 frame")
    mine.reload()
    assert mine.values("filepath") == [str(blackswan_mp4)] and mine.values("note") == ["mine"]
    assert mine.first().frames[1]["tracks"].detections[0].label == "mine"


# --- runs with random weights ----------------------------------------------------------------------


def test_clicks_boxes_labels_and_a_frame_range(tmp_path, tiny_clip, fresh_dataset_name):
    import fiftyone as fo

    result = run_cli("--random-weights", "--video", tiny_clip, "--dataset", fresh_dataset_name, "--device", "cpu",
                     "--frames", "2:", "--max-frames", "3", "--label", "swan", "--click", "264,131", "--click", "20,20,-",
                     "--label", "rock", "--box", "10,150,120,230", "--label-field", "tracks",
                     cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    assert NOTHING_BUILT in result.stderr
    for stage in ("loading SAM (vit_b)", "key frame index 1: SAM embedding and masks for 2 prompt(s)",
                  "tracking forward from frame index 1", "loading the DeAOT tracker (r50_deaotl)", "3/3"):
        assert stage in result.stderr
    lines = result.stdout.splitlines()  # the summary, and only it
    assert lines[0].startswith("Tracked 1 video(s), 5 frames (frames 2..4 tracked): 3 frames with labels")
    assert lines[1].startswith(f"View it: {sys.executable} -c 'import fiftyone as fo; ") and "--app" in lines[1]
    assert len(lines) == 2

    dataset = fo.load_dataset(fresh_dataset_name)
    sample = dataset.first()
    assert [n for n, frame in sample.frames.items() if frame["tracks"] is not None] == [2, 3, 4]
    assert set(dataset.distinct("frames.tracks.detections.label")) <= {"swan", "rock"}
    config = dataset.get_run_info("samtrack_tracks").config
    assert config.options["frame_range"] == [1, 4]
    assert [(p["type"], p["frame"], p["label"]) for p in config.prompts["all_videos"]] == [
        ("click", 1, "swan"), ("box", 1, "rock")]
    assert config.prompts["all_videos"][0]["labels"] == [1, 0]


def test_text_in_automatic_mode_becomes_auto_text(tmp_path, tiny_clip, fresh_dataset_name):
    """Up to the first model load (random Grounding-DINO + SAM segment-everything is minutes on a CPU): the
    automatic stage names the text classes, and an unusable checkpoint then ends in exit 2, nothing kept."""
    import fiftyone as fo

    encoder = tmp_path / "bert"
    encoder.mkdir()
    for name in ("config.json", "vocab.txt", "model.safetensors"):
        (encoder / name).write_text("")
    (tmp_path / "gdino.pth").write_bytes(b"")
    result = run_cli(*_fake_checkpoints(tmp_path), "--detector-checkpoint", tmp_path / "gdino.pth",
                     "--text-encoder", encoder, "--video", tiny_clip, "--dataset", fresh_dataset_name,
                     "--mode", "automatic", "--text", "swan", "--sam-gap", "5", "--device", "cpu",
                     cache_dir=tmp_path / "cache")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "tracking forward from frame index 0, looking for new objects every 5 frames (Grounding-DINO 'swan')" \
        in result.stderr
    assert f"{tmp_path / 'deaot.pth'}" in result.stderr and "Traceback" not in result.stderr
    assert not fo.dataset_exists(fresh_dataset_name)
