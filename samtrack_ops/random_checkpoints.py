"""Random-weight checkpoints in the official file formats, for tests and ``--random-weights`` runs.

Each writer builds the real architecture with random initial weights and saves it the way the
official release files are laid out, so the normal loading code reads them unchanged:

- SAM: ``torch.save(state_dict)`` of ``segment_anything.sam_model_registry[variant]()``.
- DeAOT: ``torch.save({"state_dict": state_dict})`` of the tracker network (the AOT authors' key names).
- Grounding-DINO: ``torch.save({"model": state_dict})`` of the model built from its config file.
- Text encoder: a tiny BERT folder (``save_pretrained``) with a small vocabulary, usable offline.

Outputs of these models are meaningless; they exercise shapes, formats and code paths only.
"""

import dataclasses
from pathlib import Path

import torch

from samtrack_ops import models

# Enough word pieces to tokenise short English prompts; anything else becomes [UNK].
_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = (
    "a an the and or of on in with . , person people man woman boy girl child dog cat horse bird swan "
    "duck car bus truck bike bicycle motorcycle boat plane train ball tree water road black white red "
    "blue green yellow left right small big"
).split()
_LETTERS = [chr(code) for code in range(ord("a"), ord("z") + 1)]


@dataclasses.dataclass(frozen=True)
class TinyBertSize:
    """Dimensions of the tiny offline text encoder (BERT-base is 768 wide, 12 layers)."""

    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    max_position_embeddings: int = 512


def write_tiny_bert(folder, size=TinyBertSize(), seed=0):
    """Writes config.json, vocab.txt, tokenizer files and random weights of a tiny BERT into ``folder``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys(_SPECIAL_TOKENS + _WORDS + _LETTERS + ["##" + letter for letter in _LETTERS]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), **dataclasses.asdict(size))
    BertModel(config).save_pretrained(folder)
    return folder


def write_random_sam(path, variant="vit_b", seed=0):
    """Saves a random SAM ``variant`` ("vit_b", "vit_l", "vit_h") state dict to ``path``."""
    from segment_anything import sam_model_registry

    torch.manual_seed(seed)
    torch.save(sam_model_registry[variant]().state_dict(), path)
    return Path(path)


def write_random_tracker(path, name="r50_deaotl", seed=0):
    """Saves ``{"state_dict": ...}`` of a random DeAOT network ``name`` (e.g. "r50_deaotl") to ``path``."""
    from samtrack_ops.tracker.network import build_network

    torch.manual_seed(seed)
    torch.save({"state_dict": build_network(name).state_dict()}, path)
    return Path(path)


def write_random_groundingdino(path, text_encoder_dir, detector_model="groundingdino_swint_ogc", seed=0):
    """Saves ``{"model": state_dict}`` of a random Grounding-DINO ``detector_model`` (a registry name) using
    the BERT in ``text_encoder_dir``."""
    from samtrack_ops.detector import build_groundingdino

    torch.manual_seed(seed)
    torch.save({"model": build_groundingdino(detector_model, text_encoder_dir).state_dict()}, path)
    return Path(path)


def write_random_checkpoints(folder, names):
    """Writes random checkpoints for registry ``names`` into ``folder`` (official file names).

    Returns ``{name: path}``, plus ``"text_encoder"`` (a tiny BERT folder) when a Grounding-DINO
    checkpoint is among ``names`` (its text branch is sized for that encoder).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names:
        entry = models.get_entry(name)
        target = folder / entry.file_name
        if entry.family == "sam":
            written[name] = write_random_sam(target, entry.architecture)
        elif entry.family == "deaot":
            written[name] = write_random_tracker(target, entry.architecture)
        else:
            written.setdefault("text_encoder", write_tiny_bert(folder / "tiny_bert"))
            written[name] = write_random_groundingdino(target, written["text_encoder"], name)
    return written
