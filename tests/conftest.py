"""Shared test fixtures.

Sections (add new fixtures to the matching one):
  1. Test environment: set before anything imports fiftyone (throwaway database, plugins dir).
  2. Shared data: ../shared/data and ../shared/fixtures (skip cleanly when absent; under CI=true an
     absent shared folder stops the run before any test).
  3. Checkpoints: random-weight files in the official formats, built lazily once per session.
  4. FiftyOne: datasets made from the shared data.
"""

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

REPO_DIR = Path(__file__).resolve().parents[1]

# --- 1. test environment ---------------------------------------------------------------------------
# FiftyOne reads these when it is first imported, so they are set at conftest import time.

TEST_DATABASE_NAME = f"samtrack-test-{uuid.uuid4().hex[:12]}"
PLUGINS_DIR = Path(tempfile.mkdtemp(prefix="samtrack-plugins-"))
(PLUGINS_DIR / "samtrack").symlink_to(REPO_DIR, target_is_directory=True)  # FiftyOne follows links

os.environ["FIFTYONE_DATABASE_NAME"] = TEST_DATABASE_NAME
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["FIFTYONE_PLUGINS_DIR"] = str(PLUGINS_DIR)


def pytest_sessionfinish(session, exitstatus):
    """Drops the throwaway database (only if a test started FiftyOne) and removes the plugins dir."""
    if "fiftyone" in sys.modules:
        import fiftyone.core.odm.database as database

        database.drop_database()
    shutil.rmtree(PLUGINS_DIR, ignore_errors=True)


# --- 2. shared data --------------------------------------------------------------------------------

DAVIS_SEQUENCES = ("blackswan", "bmx-trees", "car-shadow", "libby")


class DavisClip(NamedTuple):
    """frames: N x H x W x 3 uint8 RGB; masks: N x H x W bool (ground truth, one object)."""

    frames: np.ndarray
    masks: np.ndarray


def shared_folder():
    """The shared data folder: env SAMTRACK_SHARED_DIR, else <repo>/../shared (may be absent)."""
    return Path(os.environ.get("SAMTRACK_SHARED_DIR", REPO_DIR.parent / "shared"))


def running_in_ci():
    """True when the environment variable CI is "true" or "1" (set by CI services)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def pytest_configure(config):
    """Under CI a missing shared folder is an error: one message and a failed run, not a green run of
    skips."""
    if running_in_ci() and not shared_folder().is_dir():
        shutil.rmtree(PLUGINS_DIR, ignore_errors=True)
        raise pytest.UsageError(
            f"CI=true but the shared data folder {shared_folder()} is absent: the tests need ../shared "
            "(data/ and fixtures/) next to the checkout, or SAMTRACK_SHARED_DIR pointing at it"
        )


@pytest.fixture(scope="session")
def shared_dir():
    """The shared data folder (see shared_folder); tests using it skip when it is absent outside CI."""
    folder = shared_folder()
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} is absent (set SAMTRACK_SHARED_DIR)")
    return folder


def _required(path):
    """``path`` inside the shared folder; absent: a skip, or a failure under CI."""
    if not path.exists():
        message = f"{path} is absent from the shared data"
        if running_in_ci():
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def davis_dir(shared_dir):
    """DAVIS-2016 excerpt: JPEGImages/480p/<seq>/%05d.jpg, Annotations/480p/<seq>/%05d.png (0/255)."""
    return _required(shared_dir / "data" / "davis2016")


@pytest.fixture(scope="session")
def blackswan_mp4(shared_dir):
    """blackswan as H.264 mp4: 50 frames, 854x480, 30 fps."""
    return _required(shared_dir / "data" / "blackswan.mp4")


@pytest.fixture(scope="session")
def davis_frames(davis_dir):
    """Loader ``davis_frames(seq, n=None) -> DavisClip`` of the first ``n`` frames of a DAVIS sequence."""
    import cv2

    def load(seq, n=None):
        if seq not in DAVIS_SEQUENCES:
            raise ValueError(f"unknown DAVIS sequence {seq!r}; the shared data has {DAVIS_SEQUENCES}")
        images = sorted((davis_dir / "JPEGImages" / "480p" / seq).glob("*.jpg"))[:n]
        annotations = sorted((davis_dir / "Annotations" / "480p" / seq).glob("*.png"))[:n]
        frames = np.stack([cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in images])
        masks = np.stack([cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127 for path in annotations])
        return DavisClip(frames, masks)

    return load


# --- 3. checkpoints --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory):
    """Session folder for the random-weight checkpoints below."""
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def tiny_bert_dir(checkpoint_dir):
    """A tiny offline BERT folder (config.json, vocab.txt, tokenizer, model.safetensors): Path."""
    from samtrack_ops.random_checkpoints import write_tiny_bert

    return write_tiny_bert(checkpoint_dir / "tiny_bert")


@pytest.fixture(scope="session")
def sam_vit_b_random_ckpt(checkpoint_dir):
    """Random SAM ViT-B state dict saved like sam_vit_b_01ec64.pth: Path."""
    from samtrack_ops.random_checkpoints import write_random_sam

    return write_random_sam(checkpoint_dir / "sam_vit_b_01ec64.pth", "vit_b")


@pytest.fixture(scope="session")
def r50_deaotl_ckpt(shared_dir):
    """The shared random-weight R50-DeAOT-L checkpoint (official format) of the parity fixture: Path."""
    return _required(shared_dir / "fixtures" / "deaot_parity" / "r50_deaotl_random.pth")


@pytest.fixture(scope="session")
def groundingdino_random_ckpt(checkpoint_dir, tiny_bert_dir):
    """Random Grounding-DINO SwinT-OGC saved as {"model": state_dict}, text branch sized for tiny_bert_dir."""
    from samtrack_ops.random_checkpoints import write_random_groundingdino

    return write_random_groundingdino(checkpoint_dir / "groundingdino_swint_ogc.pth", tiny_bert_dir)


# --- 4. FiftyOne -----------------------------------------------------------------------------------


def write_mp4(frames, path, fps=24):
    """Writes N x H x W x 3 uint8 RGB frames as an mp4 (MPEG-4 part 2) file."""
    import cv2

    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="session")
def davis_videos(tmp_path_factory, davis_frames):
    """Two short mp4 clips written from the DAVIS JPEGs: {"car-shadow": Path, "libby": Path} (10 frames each)."""
    folder = tmp_path_factory.mktemp("videos")
    return {seq: write_mp4(davis_frames(seq, 10).frames, folder / f"{seq}.mp4") for seq in ("car-shadow", "libby")}


@pytest.fixture(scope="session")
def small_videos(tmp_path_factory, davis_frames):
    """Three 4-frame mp4 clips at 428x240 (DAVIS JPEGs shrunk): {"blackswan"|"car-shadow"|"libby": Path}."""
    import cv2

    folder = tmp_path_factory.mktemp("small_videos")
    clips = {}
    for seq in ("blackswan", "car-shadow", "libby"):
        frames = np.stack([cv2.resize(f, (428, 240), interpolation=cv2.INTER_AREA) for f in davis_frames(seq, 4).frames])
        clips[seq] = write_mp4(frames, folder / f"{seq}.mp4")
    return clips


@pytest.fixture
def video_dataset(blackswan_mp4, davis_videos):
    """A fresh fo.Dataset of three videos (blackswan.mp4 + two DAVIS clips) with metadata; deleted afterwards."""
    import fiftyone as fo

    dataset = fo.Dataset()
    paths = [blackswan_mp4, *davis_videos.values()]
    dataset.add_samples([fo.Sample(filepath=str(path)) for path in paths])
    dataset.compute_metadata()
    yield dataset
    if fo.dataset_exists(dataset.name):
        dataset.delete()
