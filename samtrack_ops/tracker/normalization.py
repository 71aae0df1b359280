"""Normalisation layers of the DeAOT network (names match the official checkpoints)."""

import torch
import torch.nn.functional as F
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters, stored as buffers.

    Buffers ``weight``, ``bias``, ``running_mean``, ``running_var`` (no ``num_batches_tracked``).
    The defaults make it an identity (variance 1 - eps), like the official constructor.
    """

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels) - eps)

    def forward(self, x):
        """x: (B, C, H, W) -> (B, C, H, W)."""
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )


class TokenGroupNorm(nn.Module):
    """GroupNorm over the channels of a token sequence; the norm lives in ``.gn``."""

    def __init__(self, channels, groups):
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)

    def forward(self, tokens):
        """tokens: (B, L, C) -> (B, L, C)."""
        return self.gn(tokens.transpose(1, 2)).transpose(1, 2)
