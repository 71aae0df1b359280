"""MobileNetV2 encoder of DeAOT-T/S/B/L: output stride 16, frozen batch norm.

Parameter names follow the official checkpoints: ``features.<i>`` for the 19 layers (the stem conv,
17 inverted residual blocks, the final 1x1 conv), ``features.<i>.conv.<j>`` inside a block.
Once the stride reaches 16, later stride-2 groups keep stride 1 and dilate their depthwise convs
instead; the first block of such a group keeps the previous dilation, the following ones use the new one.
"""

from torch import nn

from samtrack_ops.tracker.normalization import FrozenBatchNorm2d

_OUTPUT_STRIDE = 16
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280
# (expansion, output channels, blocks, first-block stride) of each inverted residual group.
_BLOCK_GROUPS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# features[start:end] of each returned map: strides 4, 8, 16, 16 with 24, 32, 96, 1280 channels.
_STAGE_BOUNDS = ((0, 4), (4, 7), (7, 14), (14, 19))


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias, "same" padding) -> frozen BN -> ReLU6, as children "0", "1", "2"."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, dilation=1, groups=1):
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False
            ),
            FrozenBatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when expansion is 1) -> 3x3 depthwise -> 1x1 linear projection.

    Adds the input back when the block keeps both resolution and channel count.
    """

    def __init__(self, in_channels, out_channels, stride, dilation, expansion):
        super().__init__()
        hidden = in_channels * expansion
        layers = [ConvBNReLU6(in_channels, hidden, kernel_size=1)] if expansion != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, dilation=dilation, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            FrozenBatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        """x: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
        out = self.conv(x)
        return x + out if self.residual else out


def _inverted_residual_layers(in_channels):
    """The 17 blocks, with strides capped at the output stride (dilation beyond it)."""
    layers = []
    current_stride, dilation = 2, 1
    for expansion, out_channels, blocks, stride in _BLOCK_GROUPS:
        first_dilation = dilation
        if current_stride == _OUTPUT_STRIDE:
            dilation *= stride
            stride = 1
        else:
            current_stride *= stride
        for index in range(blocks):
            block_stride, block_dilation = (stride, first_dilation) if index == 0 else (1, dilation)
            layers.append(InvertedResidual(in_channels, out_channels, block_stride, block_dilation, expansion))
            in_channels = out_channels
    return layers, in_channels


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 (width 1.0) returning features at strides 4, 8, 16 and 16."""

    def __init__(self):
        super().__init__()
        blocks, channels = _inverted_residual_layers(_STEM_CHANNELS)
        self.features = nn.Sequential(
            ConvBNReLU6(3, _STEM_CHANNELS, stride=2),
            *blocks,
            ConvBNReLU6(channels, _LAST_CHANNELS, kernel_size=1),
        )
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")

    def forward(self, image):
        """image: (B, 3, H, W) -> [(B, 24, H/4, W/4), (B, 32, H/8, W/8), (B, 96, H/16, W/16),
        (B, 1280, H/16, W/16)] (sizes rounded up like the strided convs)."""
        outputs = []
        x = image
        for start, end in _STAGE_BOUNDS:
            for layer in self.features[start:end]:
                x = layer(x)
            outputs.append(x)
        return outputs


def build():
    """Builds the DeAOT-T/S/B/L encoder (random weights; load a checkpoint for real ones)."""
    return MobileNetV2Encoder()
