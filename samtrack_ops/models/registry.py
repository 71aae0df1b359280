"""The checkpoint registry: every model file the project can use, where it comes from, where it is cached.

Every model file is a :class:`CheckpointEntry` in :data:`CHECKPOINTS` (official URL, file name, expected
size and SHA-256 where published). Files live in the cache folder (env ``SAMTRACK_CACHE_DIR``, default
``~/.cache/samtrack``) or anywhere the caller points at explicitly.
"""

import dataclasses
import os
from pathlib import Path

CACHE_DIR_ENV = "SAMTRACK_CACHE_DIR"

# Option of the Python entry points (and CLI flag) that takes an existing file, per model family.
CHECKPOINT_OPTIONS = {
    "sam": ("sam_checkpoint", "--sam-checkpoint"),
    "deaot": ("tracker_checkpoint", "--tracker-checkpoint"),
    "groundingdino": ("detector_checkpoint", "--detector-checkpoint"),
}


@dataclasses.dataclass(frozen=True)
class CheckpointEntry:
    """One downloadable model file.

    ``family`` is "sam", "deaot" or "groundingdino"; ``architecture`` names the model inside the family
    (SAM: "vit_b"/"vit_l"/"vit_h"; DeAOT: the official model name, e.g. "r50_deaotl"; Grounding-DINO:
    the config file name). ``size`` (bytes) and ``sha256`` are None where no official value is known.
    ``page`` is where a person downloads the file by hand.
    """

    name: str
    family: str
    architecture: str
    file_name: str
    url: str
    page: str
    size: int | None = None
    sha256: str | None = None
    stage: str | None = None

    @property
    def groundingdino_config(self):
        """Grounding-DINO config file name (``groundingdino/config/<name>``); None for other families."""
        return self.architecture if self.family == "groundingdino" else None


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM_PAGE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
_GDINO_RELEASE = "https://github.com/IDEA-Research/GroundingDINO/releases/download/"
_AOT_PAGE = "https://github.com/yoxu515/aot-benchmark/blob/main/MODEL_ZOO.md"


def _sam(variant, suffix, size, sha256):
    file_name = f"sam_{variant}_{suffix}.pth"
    return CheckpointEntry(f"sam_{variant}", "sam", variant, file_name, _SAM_URL + file_name, _SAM_PAGE,
                           size, sha256)


def _deaot(name, file_prefix, drive_id):
    """DeAOT main-training (PRE_YTB_DAV) weights from the AOT authors' Google Drive."""
    url = f"https://drive.usercontent.google.com/download?id={drive_id}&export=download&confirm=t"
    page = f"https://drive.google.com/file/d/{drive_id}/view (listed in {_AOT_PAGE})"
    return CheckpointEntry(name, "deaot", name, f"{file_prefix}_PRE_YTB_DAV.pth", url, page,
                           stage="PRE_YTB_DAV")


CHECKPOINTS = {
    entry.name: entry
    for entry in [
        _sam("vit_b", "01ec64", 375_042_383, "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
        _sam("vit_l", "0b3195", 1_249_524_607, "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
        _sam("vit_h", "4b8939", 2_564_550_879, "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
        _deaot("r50_deaotl", "R50_DeAOTL", "1QoChMkTVxdYZ_eBlZhK2acq9KMQZccPJ"),
        _deaot("deaott", "DeAOTT", "1ThWIZQS03cYWx1EKNN8MIMnJS5eRowzr"),
        _deaot("deaots", "DeAOTS", "1YwIAV5tBtn5spSFxKLBQBEQGwPHyQlHi"),
        _deaot("deaotb", "DeAOTB", "1BHxsonnvJXylqHlZ1zJHHc-ymKyq-CFf"),
        _deaot("deaotl", "DeAOTL", "18elNz_wi9JyVBcIUYKhRdL08MA-FqHD5"),
        _deaot("swinb_deaotl", "SwinB_DeAOTL", "1g4E-F0RPOx9Nd6J7tU9AE1TjsouL4oZq"),
        CheckpointEntry(
            "groundingdino_swint_ogc", "groundingdino", "GroundingDINO_SwinT_OGC.py",
            "groundingdino_swint_ogc.pth", _GDINO_RELEASE + "v0.1.0-alpha/groundingdino_swint_ogc.pth",
            "https://github.com/IDEA-Research/GroundingDINO/releases/tag/v0.1.0-alpha"
            " (mirror: https://huggingface.co/ShilongLiu/GroundingDINO)",
            693_997_677, "3b3ca2563c77c69f651d7bd133e97139c186df06231157a64c507099c52bc799"),
        CheckpointEntry(
            "groundingdino_swinb", "groundingdino", "GroundingDINO_SwinB_cfg.py",
            "groundingdino_swinb_cogcoor.pth", _GDINO_RELEASE + "v0.1.0-alpha2/groundingdino_swinb_cogcoor.pth",
            "https://github.com/IDEA-Research/GroundingDINO/releases/tag/v0.1.0-alpha2"
            " (mirror: https://huggingface.co/ShilongLiu/GroundingDINO)"),
    ]
}


def names_of(family, prefix=""):
    """Model names of one family in registry order, without ``prefix`` (``names_of("sam", "sam_")`` ->
    ("vit_b", "vit_l", "vit_h"), the ``sam_model`` option's values)."""
    return tuple(name.removeprefix(prefix) for name, entry in CHECKPOINTS.items() if entry.family == family)


def get_entry(name):
    """The registry entry called ``name``; ValueError listing the valid names otherwise."""
    if name not in CHECKPOINTS:
        raise ValueError(f"Unknown checkpoint {name!r}; expected one of {sorted(CHECKPOINTS)}")
    return CHECKPOINTS[name]


def cache_dir(path=None):
    """The checkpoint cache folder: ``path``, else env SAMTRACK_CACHE_DIR, else ~/.cache/samtrack."""
    chosen = path or os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "samtrack"
    return Path(chosen).expanduser()


def list_checkpoints(cache=None):
    """One dict per registry entry: name, family, architecture, file_name, present, path, size, sha256, url."""
    folder = cache_dir(cache)
    return [
        {
            "name": entry.name,
            "family": entry.family,
            "architecture": entry.architecture,
            "file_name": entry.file_name,
            "present": (folder / entry.file_name).is_file(),
            "path": str(folder / entry.file_name),
            "size": entry.size,
            "sha256": entry.sha256,
            "url": entry.url,
        }
        for entry in CHECKPOINTS.values()
    ]


def missing_checkpoint_message(entry, target, reason):
    """Instructions for providing ``entry`` by hand: which file, from where, to where, or which option."""
    option, flag = CHECKPOINT_OPTIONS[entry.family]
    size = f" ({entry.size:,} bytes)" if entry.size else ""
    return (
        f"Checkpoint {entry.name!r} is not available ({reason}).\n"
        f"  file:      {entry.file_name}{size}\n"
        f"  download:  {entry.url}\n"
        f"  by hand:   {entry.page}\n"
        f"  put it at: {target}  (the cache folder; env {CACHE_DIR_ENV} moves it)\n"
        f"  or point at an existing copy with {option}=PATH (CLI: {flag} PATH)."
    )


SAM_MODELS = names_of("sam", "sam_")  # values of the sam_model option
TRACKER_MODELS = names_of("deaot")  # values of the tracker_model option
DETECTOR_MODELS = names_of("groundingdino")  # values of the detector_model option
