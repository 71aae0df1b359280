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

    def scale_and_shift(self):
        """(scale, shift) with forward(x) == x * scale + shift per channel: two (C,) tensors."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x):
        """x: (B, C, H, W) -> (B, C, H, W)."""
        scale, shift = self.scale_and_shift()
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def conv_frozen_bn(x, conv, norm):
    """norm(conv(x)) as one convolution with the frozen batch norm folded into the conv weights."""
    scale, shift = norm.scale_and_shift()
    bias = shift if conv.bias is None else conv.bias * scale + shift
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class TokenGroupNorm(nn.Module):
    """GroupNorm over the channels of a token sequence; the norm lives in ``.gn``."""

    def __init__(self, channels, groups):
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels)

    def forward(self, tokens):
        """tokens: (B, L, C) -> (B, L, C)."""
        return self.gn(tokens.transpose(1, 2)).transpose(1, 2)
