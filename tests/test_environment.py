"""The shared test environment and fixtures of conftest.py do what other tests rely on."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import PLUGINS_DIR, REPO_DIR, TEST_DATABASE_NAME
from samtrack_ops import models


def test_fiftyone_uses_throwaway_database_and_plugins_dir():
    import fiftyone as fo

    assert fo.config.database_name == TEST_DATABASE_NAME
    assert fo.config.plugins_dir == str(PLUGINS_DIR)
    assert os.path.realpath(PLUGINS_DIR / "samtrack") == str(REPO_DIR)


def test_plugin_is_discovered_through_the_linked_checkout():
    import fiftyone.plugins as fop
    import yaml

    name = yaml.safe_load((REPO_DIR / "fiftyone.yml").read_text())["name"]
    plugins = {plugin.name: plugin for plugin in fop.list_plugins(enabled="all")}
    assert name in plugins
    assert os.path.realpath(plugins[name].directory) == str(REPO_DIR)


@pytest.mark.parametrize("ci, exit_code", [("true", 4), ("", 0)])
def test_missing_shared_folder_fails_the_run_under_ci(tmp_path, ci, exit_code):
    # A tiny selection, collected only: under CI=true the run stops with one message before collecting.
    env = dict(os.environ, CI=ci, SAMTRACK_SHARED_DIR=str(tmp_path / "missing"))
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "tests/test_cmr.py"], cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == exit_code, output
    message = f"CI=true but the shared data folder {tmp_path / 'missing'} is absent"
    assert (message in output) == (ci == "true"), output


def test_davis_frames_loader(davis_frames):
    clip = davis_frames("blackswan", 3)
    assert clip.frames.shape == (3, 480, 854, 3) and clip.frames.dtype == "uint8"
    assert clip.masks.shape == (3, 480, 854) and clip.masks.dtype == bool
    assert 0.01 < clip.masks.mean() < 0.5  # the swan covers part of the frame
    with pytest.raises(ValueError, match="unknown DAVIS sequence"):
        davis_frames("nope")


def test_video_dataset_has_readable_videos(video_dataset):
    video_dataset.compute_metadata()
    counts = sorted(video_dataset.values("metadata.total_frame_count"))
    assert counts == [10, 10, 50]
    assert set(video_dataset.values("metadata.frame_width")) == {854}


def test_random_sam_checkpoint_loads_into_segment_anything(sam_vit_b_random_ckpt):
    from segment_anything import sam_model_registry

    state_dict = models.load_checkpoint(sam_vit_b_random_ckpt)
    model = sam_model_registry["vit_b"]()
    models.check_state_dict(state_dict, {k: v.shape for k, v in model.state_dict().items()},
                            sam_vit_b_random_ckpt, "SAM ViT-B")
    model.load_state_dict(state_dict)
    with pytest.raises(models.CheckpointError, match="does not hold SAM ViT-H weights"):
        models.check_state_dict(state_dict, {k: v.shape for k, v in sam_model_registry["vit_h"]().state_dict().items()},
                                sam_vit_b_random_ckpt, "SAM ViT-H")


def test_random_tracker_checkpoint_matches_official_layout(tmp_path, r50_deaotl_ckpt):
    from samtrack_ops.random_checkpoints import write_random_tracker

    official = models.load_checkpoint(r50_deaotl_ckpt)["state_dict"]
    written = models.load_checkpoint(write_random_tracker(tmp_path / "r50.pth"))["state_dict"]
    models.check_state_dict(written, {k: v.shape for k, v in official.items()}, tmp_path / "r50.pth", "R50-DeAOT-L")


def test_random_groundingdino_checkpoint_has_official_layout(groundingdino_random_ckpt, tiny_bert_dir):
    from samtrack_ops.detector import build_groundingdino

    checkpoint = models.load_checkpoint(groundingdino_random_ckpt)
    assert list(checkpoint) == ["model"]
    model = build_groundingdino("groundingdino_swint_ogc", tiny_bert_dir)
    model.load_state_dict(checkpoint["model"])
    assert any(key.startswith("backbone.0.layers") for key in checkpoint["model"])  # Swin-T trunk
    assert checkpoint["model"]["feat_map.weight"].shape == (256, 32)  # text branch sized for the tiny BERT
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values() if value.is_floating_point())
