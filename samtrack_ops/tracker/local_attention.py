"""Short-term (local) gated propagation: each token attends to the 15x15 window around it.

The reference's CPU fallback unfolds every 15x15 key neighbourhood, then scatters the window
weights into a dense (L x L) matrix and multiplies it with all values. Here the token grid is
cut into small tiles; a tile's queries only see the keys in the tile grown by the window radius,
so scores and weighted sums are small batched matrix products of (tile x neighbourhood) size.
Window bookkeeping (relative-position bias, out-of-image keys, softmax over the 225 window
positions) is identical to the reference; only the summation order of float32 sums differs.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from samtrack_ops.tracker.attention import DepthwiseConv

_TILE = (8, 8)


def _window_index(tile, max_distance, device):
    """For every (query in tile, window offset), the flat position of that key in the neighbourhood.

    Returns (tile_h * tile_w, window * window) int64; the neighbourhood is
    (tile_h + 2 * max_distance) x (tile_w + 2 * max_distance) keys, row-major.
    """
    window = 2 * max_distance + 1
    tile_h, tile_w = tile
    neighbourhood_w = tile_w + 2 * max_distance
    query_y, query_x = torch.meshgrid(
        torch.arange(tile_h, device=device), torch.arange(tile_w, device=device), indexing="ij"
    )
    offset_y, offset_x = torch.meshgrid(
        torch.arange(window, device=device), torch.arange(window, device=device), indexing="ij"
    )
    key_y = query_y.reshape(-1, 1) + offset_y.reshape(1, -1)
    key_x = query_x.reshape(-1, 1) + offset_x.reshape(1, -1)
    return key_y * neighbourhood_w + key_x


def _to_tiles(grid, tile):
    """grid: (B, th * nty, tw * ntx, C) -> (B, nty * ntx, th * tw, C)."""
    batch, height, width, channels = grid.shape
    tile_h, tile_w = tile
    tiled = grid.view(batch, height // tile_h, tile_h, width // tile_w, tile_w, channels)
    return tiled.permute(0, 1, 3, 2, 4, 5).reshape(batch, -1, tile_h * tile_w, channels)


def _from_tiles(tiles, grid_size, tile):
    """tiles: (B, nty * ntx, th * tw, C) -> (B, th * nty, tw * ntx, C)."""
    batch, _, _, channels = tiles.shape
    height, width = grid_size
    tile_h, tile_w = tile
    grid = tiles.view(batch, height // tile_h, width // tile_w, tile_h, tile_w, channels)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)


def _neighbourhoods(padded, tile, max_distance):
    """padded: (B, th * nty + 2r, tw * ntx + 2r, C) -> (B, nty * ntx, (th + 2r) * (tw + 2r), C)."""
    batch, height, width, channels = padded.shape
    tile_h, tile_w = tile
    span_h, span_w = tile_h + 2 * max_distance, tile_w + 2 * max_distance
    tiles_y, tiles_x = (height - 2 * max_distance) // tile_h, (width - 2 * max_distance) // tile_w
    stride_b, stride_y, stride_x, stride_c = padded.stride()
    windows = padded.as_strided(
        (batch, tiles_y, tiles_x, span_h, span_w, channels),
        (stride_b, tile_h * stride_y, tile_w * stride_x, stride_y, stride_x, stride_c),
    )
    return windows.reshape(batch, tiles_y * tiles_x, span_h * span_w, channels)


def local_window_attention(query, key, value, bias, size_2d, max_distance, tile=_TILE):
    """Softmax attention of each token over the (2r+1)^2 keys around it (r = max_distance).

    query, key: (B, L, D) with the query already scaled; value: (B, L, Cv);
    bias: (B, L, (2r+1)^2) added to the scores, window offsets row-major (dy, dx) from (-r, -r);
    size_2d: (h, w), L = h * w. Keys outside the image get no weight. Returns (B, L, Cv).
    """
    height, width = size_2d
    tile_h, tile_w = tile
    pad_h, pad_w = -height % tile_h, -width % tile_w
    grid_size = (height + pad_h, width + pad_w)
    r = max_distance

    def grid(tokens, extra):
        tokens = tokens.reshape(tokens.shape[0], height, width, -1)
        return F.pad(tokens, (0, 0, extra, extra + pad_w, extra, extra + pad_h))

    index = _window_index(tile, r, query.device)
    query_tiles = _to_tiles(grid(query, 0), tile)
    key_tiles = _neighbourhoods(grid(key, r), tile, r)
    scores = (query_tiles @ key_tiles.transpose(-1, -2)).gather(
        -1, index.expand(*query_tiles.shape[:2], *index.shape)
    )
    scores = scores + _to_tiles(grid(bias, 0), tile)

    inside = torch.ones(1, height, width, 1, dtype=torch.bool, device=query.device)
    inside_tiles = _neighbourhoods(grid(inside, r), tile, r)[..., 0]
    inside_window = inside_tiles[:, :, None, :].expand(-1, -1, index.shape[0], -1).gather(
        -1, index.expand(1, inside_tiles.shape[1], *index.shape)
    )
    scores = scores.masked_fill(~inside_window, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)

    dense_weights = torch.zeros(
        *weights.shape[:3], key_tiles.shape[2], dtype=weights.dtype, device=weights.device
    )
    dense_weights.scatter_(-1, index.expand(*weights.shape[:2], *index.shape), weights)
    out_tiles = dense_weights @ _neighbourhoods(grid(value, r), tile, r)
    out = _from_tiles(out_tiles, grid_size, tile)[:, :height, :width]
    return out.reshape(out.shape[0], height * width, -1)


class LocalGatedPropagation(nn.Module):
    """Short-term attention of a DeAOT layer (``short_term_attn``), one or more heads.

    Keys and values come from the short-term memory (previous frame) or the current frame itself.
    """

    def __init__(self, num_heads, d_att, d_vu, max_distance=7, expand_ratio=2.0):
        super().__init__()
        self.num_heads = num_heads
        self.d_att = d_att
        self.max_distance = max_distance
        self.expanded = int(d_vu * expand_ratio)
        window = 2 * max_distance + 1
        self.relative_emb_k = nn.Conv2d(
            d_att * num_heads, num_heads * window * window, kernel_size=1, groups=num_heads
        )
        self.dw_conv = DepthwiseConv(self.expanded)
        self.projection = nn.Linear(self.expanded, d_vu)

    def _relative_bias(self, query):
        """query: (B, L, heads * d_att), unscaled -> (B * heads, L, window^2)."""
        batch, length, _ = query.shape
        heads = self.num_heads
        weight = self.relative_emb_k.weight.view(heads, -1, self.d_att)
        bias = self.relative_emb_k.bias.view(heads, 1, -1)
        per_head = query.view(batch, length, heads, self.d_att).transpose(1, 2)
        return (per_head @ weight.transpose(-1, -2) + bias).reshape(batch * heads, length, -1)

    def _split_heads(self, tokens):
        batch, length, _ = tokens.shape
        return tokens.view(batch, length, self.num_heads, -1).transpose(1, 2).reshape(
            batch * self.num_heads, length, -1
        )

    def forward(self, query, key, value, gate, size_2d):
        """query, key: (B, L, heads * d_att); value, gate: (B, L, expanded) -> (B, L, d_vu)."""
        batch, length, _ = query.shape
        bias = self._relative_bias(query)
        scaled = self._split_heads(query / math.sqrt(self.d_att))
        attended = local_window_attention(
            scaled, self._split_heads(key), self._split_heads(value), bias, size_2d, self.max_distance
        )
        attended = attended.view(batch, self.num_heads, length, -1).transpose(1, 2).reshape(
            batch, length, self.expanded
        )
        return self.projection(self.dw_conv(attended * gate, size_2d))
