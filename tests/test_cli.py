"""The main job (``python -m samtrack_ops.cli``, what ``./run.sh`` runs), as a real subprocess."""

import importlib
import os
import subprocess
import sys

import pytest

from conftest import write_mp4


def run_cli(*args, cache_dir, timeout=600):
    """Runs the CLI with an empty checkpoint cache and the test session's FiftyOne settings."""
    env = {**os.environ, "SAMTRACK_CACHE_DIR": str(cache_dir)}
    env.pop("SAMTRACK_TEXT_ENCODER", None)
    return subprocess.run([sys.executable, "-m", "samtrack_ops.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _track_samples_available():
    try:
        return hasattr(importlib.import_module("samtrack_ops.fiftyone"), "track_samples")
    except ImportError:
        return False


def test_missing_weights_stop_before_work_with_exact_instructions(tmp_path):
    result = run_cli("--video", tmp_path / "any.mp4", "--text", "swan", "--no-download", cache_dir=tmp_path)
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
        assert f"put it at: {tmp_path / file_name}" in message
        assert f"{flag} PATH" in message
    assert "SAMTRACK_CACHE_DIR" in message


def test_automatic_mode_needs_no_detector(tmp_path):
    result = run_cli("--no-download", "--tracker-model", "deaott", cache_dir=tmp_path)
    assert result.returncode == 2
    assert "DeAOTT_PRE_YTB_DAV.pth" in result.stderr and "sam_vit_b_01ec64.pth" in result.stderr
    assert "groundingdino" not in result.stderr


def test_explicit_checkpoint_that_does_not_exist(tmp_path):
    result = run_cli("--no-download", "--sam-checkpoint", tmp_path / "mine.pth", cache_dir=tmp_path)
    assert result.returncode == 2
    assert f"--sam-checkpoint points at {tmp_path / 'mine.pth'}, which is not a file" in result.stderr


def test_missing_video_file_is_reported(tmp_path):
    result = run_cli("--random-weights", "--video", tmp_path / "nope.mp4", cache_dir=tmp_path)
    assert result.returncode == 2
    assert f"--video {tmp_path / 'nope.mp4'}: no such file" in result.stderr
    assert "RANDOM model weights" not in result.stderr  # nothing was built for a run that cannot start


@pytest.mark.parametrize("args, problem", [
    (["--box", "1,2,3"], "--box wants four numbers"),
    (["--box", "10,10,5,5"], "empty or inverted"),
    (["--random-weights", "--sam-checkpoint", "x.pth"], "--random-weights writes its own checkpoints"),
])
def test_bad_arguments(tmp_path, args, problem):
    result = run_cli("--no-download", "--video", tmp_path / "v.mp4", *args, cache_dir=tmp_path)
    assert result.returncode == 2
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not _track_samples_available(),
                    reason="samtrack_ops.fiftyone.track_samples does not exist yet (pipeline not landed)")
def test_random_weights_run_writes_tracks_into_dataset(tmp_path, davis_frames):
    import fiftyone as fo

    video = write_mp4(davis_frames("libby", 3).frames, tmp_path / "libby.mp4")
    cache = tmp_path / "cache"
    result = run_cli("--random-weights", "--video", video, "--box", "300,100,500,400", "--dataset",
                     "cli-random-weights", "--device", "cpu", cache_dir=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RANDOM model weights" in result.stderr
    assert "Tracked 1 video(s), 3 frames: 3 frames with labels, 1 track IDs" in result.stdout
    dataset = fo.load_dataset("cli-random-weights")
    try:
        assert dataset.count() == 1
        assert "samtrack" in dataset.get_frame_field_schema()
        assert not cache.exists()  # the random weights went to a temporary folder, not the cache
    finally:
        dataset.delete()
