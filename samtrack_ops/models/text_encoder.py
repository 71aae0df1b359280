"""Grounding-DINO's BERT text encoder: a local folder or the Hugging Face default name."""

import os
from pathlib import Path

from samtrack_ops.models.errors import CheckpointError

TEXT_ENCODER_ENV = "SAMTRACK_TEXT_ENCODER"
DEFAULT_TEXT_ENCODER = "bert-base-uncased"

_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_text_encoder(path=None):
    """Grounding-DINO's BERT: a local folder (``path``, else env SAMTRACK_TEXT_ENCODER) or "bert-base-uncased".

    A local folder must hold config.json, a tokenizer vocabulary (vocab.txt or tokenizer.json) and
    weights (model.safetensors or pytorch_model.bin), as written by ``save_pretrained``. The default
    name is fetched by Hugging Face on first use (needs network or a filled HF cache).
    """
    chosen = path or os.environ.get(TEXT_ENCODER_ENV)
    if not chosen:
        return DEFAULT_TEXT_ENCODER
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise CheckpointError(
            f"Text encoder folder {folder} does not exist. Give a folder holding a saved BERT "
            f"(save_pretrained of bert-base-uncased: config.json, vocab.txt, model.safetensors) via "
            f"text_encoder_path or env {TEXT_ENCODER_ENV}.")
    lacking = [
        " or ".join(names)
        for names in [("config.json",), _TOKENIZER_FILES, _WEIGHT_FILES]
        if not any((folder / name).is_file() for name in names)
    ]
    if lacking:
        raise CheckpointError(
            f"Text encoder folder {folder} lacks {', '.join(lacking)}. Save a BERT model and its tokenizer "
            f"there with save_pretrained (e.g. of bert-base-uncased).")
    return str(folder)
