"""Swin-B encoder of SwinB-DeAOT-L (patch 4, window 7, embed 128, heads 4/8/16, depths 2/2/18).

Only the first three Swin-B stages exist (the fourth, stride-32 stage is dropped), so the deepest map
has stride 16. Parameter names follow the official checkpoints: ``patch_embed.*``,
``layers.<stage>.blocks.<i>.{norm1,attn,norm2,mlp}.*``, ``layers.<stage>.downsample.*`` (stages 0 and 1),
``norm0..norm2`` (one LayerNorm per returned map). Each attention module also stores its constant
``relative_position_index`` as a (persistent) buffer, as the official state dicts do.
"""

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 4
WINDOW_SIZE = 7
EMBED_DIM = 128
DEPTHS = (2, 2, 18)
NUM_HEADS = (4, 8, 16)
MLP_RATIO = 4
# Attention logit added between tokens that a cyclic shift brought into one window from different regions.
_CROSS_REGION_LOGIT = -100.0


def window_partition(x, window):
    """x: (B, H, W, C) with H, W multiples of ``window`` -> (B * nH * nW, window * window, C)."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_merge(windows, window, height, width):
    """Inverse of window_partition: (B * nH * nW, window * window, C) -> (B, H, W, C)."""
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def relative_position_index(window):
    """(window^2, window^2) int64: row-major index into the (2w-1) x (2w-1) relative-offset table."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    delta_rows = rows[:, None] - rows[None, :] + window - 1
    delta_cols = cols[:, None] - cols[None, :] + window - 1
    return delta_rows * (2 * window - 1) + delta_cols


def shifted_window_mask(padded_height, padded_width, window, shift, device, dtype):
    """(nH * nW, window^2, window^2) additive mask: 0 within a region, -100 across the regions that the
    cyclic shift by ``shift`` wraps into the last row/column of windows."""

    def region_of(size):
        positions = torch.arange(size, device=device)
        return (positions >= size - window).long() + (positions >= size - shift).long()

    regions = region_of(padded_height)[:, None] * 3 + region_of(padded_width)[None, :]
    region_windows = window_partition(regions[None, :, :, None], window).squeeze(-1)
    crosses = region_windows[:, None, :] != region_windows[:, :, None]
    return torch.zeros(crosses.shape, dtype=dtype, device=device).masked_fill(crosses, _CROSS_REGION_LOGIT)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative-position bias per head."""

    def __init__(self, dim, num_heads, window):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, windows, mask=None):
        """windows: (B * nW, N, C) with N = window^2; mask: (nW, N, N) or None -> (B * nW, N, C)."""
        count, tokens, channels = windows.shape
        q, k, v = self.qkv(windows).view(count, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        bias = bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)  # (heads, N, N)
        if mask is not None:
            bias = (bias[None] + mask[:, None]).repeat(count // mask.shape[0], 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(count, tokens, channels))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, as ``fc1`` / ``fc2``."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        """x: (..., dim) -> (..., dim)."""
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention and MLP, each with a residual connection.

    The map is padded at the bottom/right to whole windows; a shifted block rolls it up-left by ``shift``
    before partitioning and masks attention across the wrapped regions.
    """

    def __init__(self, dim, num_heads, window, shift):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * MLP_RATIO)

    def forward(self, x, shift_mask):
        """x: (B, H, W, C); shift_mask: (nW, N, N) for the padded map -> (B, H, W, C)."""
        _, height, width, _ = x.shape
        pad_bottom, pad_right = (-height) % self.window, (-width) % self.window
        y = F.pad(self.norm1(x), (0, 0, 0, pad_right, 0, pad_bottom))
        padded_height, padded_width = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(y, self.window), shift_mask if self.shift else None)
        y = window_merge(windows, self.window, padded_height, padded_width)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y[:, :height, :width]
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Halves the resolution: concatenates each 2x2 neighbourhood (4C), normalises, projects to 2C."""

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        """x: (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C); odd sizes are zero-padded first."""
        _, height, width, _ = x.shape
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        # Neighbourhood order: (even row, even col), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """Alternating plain / shifted window blocks, optionally followed by patch merging."""

    def __init__(self, dim, depth, num_heads, window, downsample):
        super().__init__()
        self.window = window
        self.shift = window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, shift=0 if index % 2 == 0 else self.shift) for index in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x):
        """x: (B, H, W, C) -> (stage output (B, H, W, C), input of the next stage)."""
        height, width = x.shape[1:3]
        padded = (-(-height // self.window) * self.window, -(-width // self.window) * self.window)
        shift_mask = shifted_window_mask(*padded, self.window, self.shift, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, shift_mask)
        return x, (x if self.downsample is None else self.downsample(x))


class PatchEmbed(nn.Module):
    """Non-overlapping 4x4 patches -> EMBED_DIM channels, then LayerNorm."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, EMBED_DIM, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)
        self.norm = nn.LayerNorm(EMBED_DIM)

    def forward(self, image):
        """image: (B, 3, H, W), zero-padded at the bottom/right to multiples of 4 -> (B, H/4, W/4, C)."""
        height, width = image.shape[-2:]
        image = F.pad(image, (0, (-width) % PATCH_SIZE, 0, (-height) % PATCH_SIZE))
        return self.norm(self.proj(image).permute(0, 2, 3, 1))


class SwinEncoder(nn.Module):
    """Swin-B stages 0..2 returning normalised maps at strides 4, 8, 16 and the stride-16 map again."""

    def __init__(self):
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.layers = nn.ModuleList(
            SwinStage(EMBED_DIM * 2**index, depth, heads, WINDOW_SIZE, downsample=index < len(DEPTHS) - 1)
            for index, (depth, heads) in enumerate(zip(DEPTHS, NUM_HEADS))
        )
        for index in range(len(DEPTHS)):
            self.add_module(f"norm{index}", nn.LayerNorm(EMBED_DIM * 2**index))

    def forward(self, image):
        """image: (B, 3, H, W) -> [(B, 128, H/4, W/4), (B, 256, H/8, W/8), (B, 512, H/16, W/16) x 2]
        (sizes rounded up)."""
        x = self.patch_embed(image)
        outputs = []
        for index, stage in enumerate(self.layers):
            stage_output, x = stage(x)
            normalised = getattr(self, f"norm{index}")(stage_output)
            outputs.append(normalised.permute(0, 3, 1, 2).contiguous())
        return outputs + [outputs[-1]]


def build():
    """Builds the SwinB-DeAOT-L encoder with random weights (PyTorch's default initialisation, like the
    official constructor; load a checkpoint for real ones)."""
    return SwinEncoder()
