"""Every script in examples/ runs end to end, as a user would run it (a subprocess), on tiny real clips.

Models are random-weight real architectures passed as checkpoint files; the FiftyOne database is the
session's throwaway one (inherited through the environment).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_mp4

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLICK = "264,131"  # on the swan in a 428x240 blackswan frame


def run_example(name, *args, cwd, timeout=600):
    """Runs examples/<name> with this interpreter in ``cwd``; returns its output (fails showing it).

    Output goes to a file, not a pipe: a FiftyOne database service started by the example outlives it
    and would keep a pipe open.
    """
    log_path = Path(cwd) / f"{name}.log"
    with open(log_path, "w") as log:
        result = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd,
                                stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    output = log_path.read_text()
    assert result.returncode == 0, f"{name} failed ({result.returncode}):\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def small_clips(davis_frames, tmp_path_factory):
    """Two 3-frame 428x240 mp4 clips (blackswan, car-shadow) in one folder: list of Paths."""
    folder = tmp_path_factory.mktemp("example_videos")
    clips = []
    for sequence in ("blackswan", "car-shadow"):
        frames = np.stack([cv2.resize(f, (428, 240)) for f in davis_frames(sequence, 3).frames])
        clips.append(write_mp4(frames, folder / f"{sequence}.mp4"))
    return clips


@pytest.fixture(scope="module")
def small_davis_root(davis_dir, tmp_path_factory):
    """A DAVIS folder holding the first 3 frames (images + masks) of blackswan."""
    root = tmp_path_factory.mktemp("davis")
    for kind, extension in (("JPEGImages", "jpg"), ("Annotations", "png")):
        target = root / kind / "480p" / "blackswan"
        target.mkdir(parents=True)
        for index in range(3):
            shutil.copy(davis_dir / kind / "480p" / "blackswan" / f"{index:05d}.{extension}", target)
    return root


def test_click_to_track(small_clips, sam_vit_b_random_ckpt, r50_deaotl_ckpt, tmp_path):
    out = run_example("click_to_track.py", small_clips[0], "--click", CLICK, "--label", "swan", "--out", "masks",
                      "--sam-checkpoint", sam_vit_b_random_ckpt, "--tracker-checkpoint", r50_deaotl_ckpt,
                      "--device", "cpu", cwd=tmp_path)
    label_maps = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in sorted((tmp_path / "masks").glob("*.png"))]
    assert len(label_maps) == 3
    assert all(m.shape == (240, 428) and set(np.unique(m)) <= {0, 1} for m in label_maps)
    assert (label_maps[0] == 1).any(), "the clicked object is on its key frame"
    assert "frame 0: swan #1:" in out


@pytest.mark.slow
def test_label_dataset_delegated(small_clips, sam_vit_b_random_ckpt, r50_deaotl_ckpt, groundingdino_random_ckpt,
                                 tiny_bert_dir, tmp_path):
    """A one-video folder queued as a delegated operation and run by a real `fiftyone delegated launch` worker.

    Random Grounding-DINO weights score all 900 boxes near 1 and SAM on 900 boxes takes many minutes on a
    CPU, so ``--box-threshold 1.0`` (scores must exceed it) lets the detector run for real and find nothing.
    """
    import fiftyone as fo

    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(small_clips[0], folder)
    out = run_example("label_dataset_delegated.py", folder, "--text", "swan. car",
                      "--dataset", "example-auto", "--workers", 1, "--box-threshold", 1.0,
                      "--sam-checkpoint", sam_vit_b_random_ckpt, "--tracker-checkpoint", r50_deaotl_ckpt,
                      "--detector-checkpoint", groundingdino_random_ckpt, "--text-encoder-path", tiny_bert_dir,
                      cwd=tmp_path, timeout=900)
    assert "queued 1 delegated operation(s)" in out
    assert "1 video(s) labelled into frames.auto_tracks, 0 failed" in out
    dataset = fo.load_dataset("example-auto")
    assert dataset.count("frames.auto_tracks") == 3, "every frame of the video got a Detections"
    dataset.delete()


@pytest.fixture(scope="module")
def davis_example(small_davis_root, sam_vit_b_random_ckpt, r50_deaotl_ckpt, tmp_path_factory):
    """Runs davis_evaluate.py once: (stdout, dataset name)."""
    out = run_example("davis_evaluate.py", small_davis_root, "--sequences", "blackswan", "--dataset", "example-davis",
                      "--sam-checkpoint", sam_vit_b_random_ckpt, "--tracker-checkpoint", r50_deaotl_ckpt,
                      cwd=tmp_path_factory.mktemp("davis_run"))
    return out, "example-davis"


def test_davis_evaluate(davis_example):
    import fiftyone as fo

    out, name = davis_example
    dataset = fo.load_dataset(name)
    assert "davis" in dataset.list_evaluations()
    metrics = dict(line.split() for line in out.splitlines() if line.split()[:1] in (["J_mean"], ["F_mean"]))
    # Of the 3 frames only the middle one is scored: J = IoU of the stored track and ground truth there,
    # F = their boundary F-measure; the script prints both rounded to 3 decimals.
    from samtrack_ops.evaluation import boundary_f_measure
    from samtrack_ops.fiftyone.storage import detections_to_label_map

    middle = dataset.first().frames[2]
    gt = middle["ground_truth_seg"].get_mask() == 1
    tracked = detections_to_label_map(middle["tracks"], gt.shape) == 1
    iou = (gt & tracked).sum() / (gt | tracked).sum()
    assert float(metrics["J_mean"]) == pytest.approx(iou, abs=5e-4)
    assert float(metrics["F_mean"]) == pytest.approx(boundary_f_measure(gt, tracked), abs=5e-4)
    assert dataset.first()["davis_J"] == pytest.approx(iou)
    first = dataset.first().frames[1]
    # the first frame's tracks are the ground-truth masks given as prompts
    assert len(first["tracks"].detections) == len(first["ground_truth"].detections) == 1


def test_export_tracks(davis_example, tmp_path):
    _, name = davis_example
    run_example("export_tracks.py", name, "tracks", tmp_path / "exports", cwd=tmp_path)
    coco = json.loads((tmp_path / "exports" / "coco" / "labels.json").read_text())
    assert len(coco["images"]) == 3
    assert {a["image_id"] for a in coco["annotations"]} <= {i["id"] for i in coco["images"]}
    annotations = sorted((tmp_path / "exports" / "davis" / "Annotations" / "480p").rglob("*.png"))
    assert len(annotations) == 3
