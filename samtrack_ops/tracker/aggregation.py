"""From per-engine logits to one label map: upsampling, soft aggregation over engines, argmax.

Engine e's channel c >= 1 is object id 10 e + c. With several engines the reference combines
probabilities: background = product of the engines' background probabilities, objects = each
engine's foreground probabilities, clamped to [1e-5, 1 - 1e-5] and turned back into logits.
Masked (unused) channels have probability 0, so they are skipped where that changes nothing.
"""

import torch
import torch.nn.functional as F

from samtrack_ops.tracker.config import MAX_OBJECTS_PER_ENGINE

_CLAMP = 1e-5


def soft_aggregate(engine_logits):
    """engine_logits: list of (1, 11, h, w) -> merged logits (1, 1 + 10 * E, h, w); one engine is returned as is."""
    if len(engine_logits) == 1:
        return engine_logits[0]
    probabilities = [torch.softmax(logits, dim=1) for logits in engine_logits]
    background = torch.prod(torch.cat([p[:, :1] for p in probabilities], dim=1), dim=1, keepdim=True)
    merged = torch.cat([background] + [p[:, 1 : 1 + MAX_OBJECTS_PER_ENGINE] for p in probabilities], dim=1)
    return torch.logit(merged.clamp(_CLAMP, 1 - _CLAMP))


def _upsample(logits, output_size, align_corners):
    return F.interpolate(logits, size=output_size, mode="bilinear", align_corners=align_corners)


def _first_argmax(maps):
    """maps: (C, H, W) -> (max (H, W), first index of the max (H, W) int64), channel by channel
    (argmax over a strided channel axis of full-size maps is slow on CPU)."""
    best, best_index = maps[0].clone(), torch.zeros(maps.shape[1:], dtype=torch.long, device=maps.device)
    for index in range(1, maps.shape[0]):
        better = maps[index] > best
        best = torch.where(better, maps[index], best)
        best_index.masked_fill_(better, index)
    return best, best_index


def label_map_from_logits(engine_logits, object_counts, output_size, align_corners):
    """Label map (H, W) int64 at output_size from per-engine logits (1, 11, h, w).

    object_counts: live identities per engine. Each engine is upsampled (live channels only) and
    folded into a running argmax, so memory stays at one engine's worth of full-size maps.
    """
    if len(engine_logits) == 1:
        live = engine_logits[0][:, : object_counts[0] + 1]
        return _first_argmax(_upsample(live, output_size, align_corners)[0])[1]
    background = best_logit = best_id = None
    for index, (logits, count) in enumerate(zip(engine_logits, object_counts)):
        probabilities = torch.softmax(_upsample(logits[:, : count + 1], output_size, align_corners)[0], dim=0)
        background = probabilities[0] if background is None else background * probabilities[0]
        if count == 0:
            continue
        engine_logit, engine_best = _first_argmax(torch.logit(probabilities[1:].clamp(_CLAMP, 1 - _CLAMP)))
        engine_best += index * MAX_OBJECTS_PER_ENGINE + 1
        if best_logit is None:
            best_logit, best_id = engine_logit, engine_best
        else:
            better = engine_logit > best_logit
            best_logit = torch.where(better, engine_logit, best_logit)
            best_id = torch.where(better, engine_best, best_id)
    background_logit = torch.logit(background.clamp(_CLAMP, 1 - _CLAMP))
    if best_logit is None:
        return torch.zeros_like(background_logit, dtype=torch.long)
    return torch.where(background_logit >= best_logit, torch.zeros_like(best_id), best_id)
