"""Gated propagation attention of DeAOT: global (long-term / self) and local (short-term).

Token layout everywhere: (B, L, C) with L = h * w tokens in row-major order over the stride-16 grid.
Module and parameter names match the official checkpoints.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class DepthwiseConv(nn.Module):
    """5x5 depthwise convolution applied to tokens laid out on their 2-D grid (weights in ``.conv``)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 5, padding=2, groups=channels, bias=False)

    def forward(self, tokens, size_2d):
        """tokens: (B, L, C), size_2d = (h, w) with h * w = L -> (B, L, C)."""
        batch, length, channels = tokens.shape
        grid = tokens.view(batch, *size_2d, channels).permute(0, 3, 1, 2)  # channels-last, no copy
        return self.conv(grid).permute(0, 2, 3, 1).reshape(batch, length, channels)


class GlobalGatedPropagation(nn.Module):
    """Attention over all memory tokens, gated by U, then depthwise conv and projection.

    d_qk: width of the incoming query/key (projected to heads * d_att when ``use_linear``).
    d_vu: width of the incoming value/gate halves (visual + identity) when ``use_linear``.
    The value/gate width after expansion is ``expand_ratio * d_vu``; the output width is ``d_vu``.
    """

    def __init__(self, d_qk, d_vu, num_heads, d_att, use_linear, expand_ratio=2.0):
        super().__init__()
        self.num_heads = num_heads
        self.d_att = d_att
        self.expanded = int(d_vu * expand_ratio)
        self.head_dim = self.expanded // num_heads
        self.use_linear = use_linear
        if use_linear:
            half_in, half_out = d_vu // 2, self.head_dim * num_heads // 2
            self.linear_QK = nn.Linear(d_qk, d_att * num_heads)
            self.linear_V1 = nn.Linear(half_in, half_out)
            self.linear_V2 = nn.Linear(half_in, half_out)
            self.linear_U1 = nn.Linear(half_in, half_out)
            self.linear_U2 = nn.Linear(half_in, half_out)
        self.dw_conv = DepthwiseConv(self.expanded)
        self.projection = nn.Linear(self.expanded, d_vu)

    def _two_branch_projection(self, x, first, second):
        """Projects the visual and identity halves of x separately and interleaves them per head."""
        part1, part2 = x.chunk(2, dim=-1)
        part1, part2 = first(part1), second(part2)
        batch, length, _ = part1.shape
        heads = self.num_heads
        merged = torch.cat(
            [part1.view(batch, length, heads, -1), part2.view(batch, length, heads, -1)], dim=-1
        )
        return F.silu(merged.view(batch, length, self.expanded))

    def forward(self, query, key, value, gate, size_2d):
        """query: (B, L, Cq), key: (B, N, Cq), value: (B, N, Cv), gate: (B, L, Cv) -> (B, L, d_vu).

        Without ``use_linear`` Cq = heads * d_att and Cv = the expanded width.
        """
        if self.use_linear:
            query = key = self.linear_QK(query)
            value = self._two_branch_projection(value, self.linear_V1, self.linear_V2)
            gate = self._two_branch_projection(gate, self.linear_U1, self.linear_U2)
        batch, length, _ = query.shape
        heads = self.num_heads
        query = (query / math.sqrt(self.d_att)).view(batch, length, heads, self.d_att).transpose(1, 2)
        key = key.view(batch, -1, heads, self.d_att).transpose(1, 2)
        value = value.view(batch, -1, heads, self.head_dim).transpose(1, 2)
        weights = torch.softmax(query @ key.transpose(-1, -2), dim=-1)
        attended = (weights @ value).transpose(1, 2).reshape(batch, length, self.expanded)
        return self.projection(self.dw_conv(attended * gate, size_2d))
