"""FPN segmentation head of DeAOT (``decoder.*``): stride-16 tokens -> stride-4 identity logits."""

import torch.nn.functional as F
from torch import nn


class ConvGroupNorm(nn.Module):
    """Convolution (``.conv``, 'same' padding) followed by an 8-group GroupNorm (``.gn``)."""

    def __init__(self, in_channels, out_channels, kernel_size, groups=8):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.gn = nn.GroupNorm(groups, out_channels)

    def forward(self, x):
        return self.gn(self.conv(x))


class FPNDecoder(nn.Module):
    """Merges the LSTT output with encoder features at strides 16, 8 and 4.

    in_dim: LSTT output channels; out_dim: identities + 1; hidden_dim: width at stride 16;
    shortcut_dims: encoder channels at strides 4, 8, 16, 16.
    """

    def __init__(self, in_dim, out_dim, hidden_dim, shortcut_dims, align_corners):
        super().__init__()
        self.align_corners = align_corners
        self.conv_in = ConvGroupNorm(in_dim, hidden_dim, 1)
        self.conv_16x = ConvGroupNorm(hidden_dim, hidden_dim, 3)
        self.conv_8x = ConvGroupNorm(hidden_dim, hidden_dim // 2, 3)
        self.conv_4x = ConvGroupNorm(hidden_dim // 2, hidden_dim // 2, 3)
        self.adapter_16x = nn.Conv2d(shortcut_dims[-2], hidden_dim, 1)
        self.adapter_8x = nn.Conv2d(shortcut_dims[-3], hidden_dim, 1)
        self.adapter_4x = nn.Conv2d(shortcut_dims[-4], hidden_dim // 2, 1)
        self.conv_out = nn.Conv2d(hidden_dim // 2, out_dim, 1)

    def _upsample_to(self, x, reference):
        return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=self.align_corners)

    def adapt(self, features):
        """Encoder maps [s4, s8, s16, ...] -> their projections (s16, s8, s4), shared by all object groups."""
        return self.adapter_16x(features[2]), self.adapter_8x(features[1]), self.adapter_4x(features[0])

    def forward(self, lstt_grid, adapted):
        """lstt_grid: (B, in_dim, h, w) at stride 16; adapted: ``adapt(features)``.

        Returns (B, out_dim, H/4, W/4) logits.
        """
        adapted16, adapted8, adapted4 = adapted
        x = F.relu(self.conv_in(lstt_grid))
        x = F.relu(self.conv_16x(adapted16 + x))
        x = F.relu(self.conv_8x(adapted8 + self._upsample_to(x, adapted8)))
        x = F.relu(self.conv_4x(adapted4 + self._upsample_to(x, adapted4)))
        return self.conv_out(x)
