"""ResNet-50 encoder of R50-DeAOT-L: stem + layer1..layer3 with frozen batch norm (output stride 16).

Inference folds each frozen batch norm into the convolution before it and runs in channels-last
memory layout (faster oneDNN kernels on CPU); both change only float rounding.
"""

import torch
import torch.nn.functional as F
from torch import nn

from samtrack_ops.tracker.normalization import FrozenBatchNorm2d, conv_frozen_bn

_BLOCKS_PER_STAGE = (3, 4, 6)
_STAGE_WIDTHS = (64, 128, 256)
_STAGE_STRIDES = (1, 2, 2)
_EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 residual block, each conv followed by frozen batch norm."""

    def __init__(self, in_channels, width, stride=1, downsample=None):
        super().__init__()
        out_channels = width * _EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_channels)
        self.downsample = downsample

    def forward(self, x):
        """x: (B, C_in, H, W) -> (B, 4 * width, H / stride, W / stride)."""
        out = F.relu_(conv_frozen_bn(x, self.conv1, self.bn1))
        out = F.relu_(conv_frozen_bn(out, self.conv2, self.bn2))
        out = conv_frozen_bn(out, self.conv3, self.bn3)
        residual = x if self.downsample is None else conv_frozen_bn(x, *self.downsample)
        return F.relu_(out.add_(residual))


def _make_stage(in_channels, width, blocks, stride):
    downsample = nn.Sequential(
        nn.Conv2d(in_channels, width * _EXPANSION, kernel_size=1, stride=stride, bias=False),
        FrozenBatchNorm2d(width * _EXPANSION),
    )
    layers = [Bottleneck(in_channels, width, stride, downsample)]
    layers += [Bottleneck(width * _EXPANSION, width) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet50Encoder(nn.Module):
    """ResNet-50 truncated after layer3; features at strides 4, 8, 16 and 16 again."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = 64
        for index, (width, blocks, stride) in enumerate(
            zip(_STAGE_WIDTHS, _BLOCKS_PER_STAGE, _STAGE_STRIDES), start=1
        ):
            setattr(self, f"layer{index}", _make_stage(in_channels, width, blocks, stride))
            in_channels = width * _EXPANSION

    def forward(self, image):
        """image: (B, 3, H, W) -> [(B, 256, H/4, W/4), (B, 512, H/8, W/8), (B, 1024, H/16, W/16) x 2]."""
        image = image.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(F.relu_(conv_frozen_bn(image, self.conv1, self.bn1)))
        stride4 = self.layer1(x)
        stride8 = self.layer2(stride4)
        stride16 = self.layer3(stride8)
        return [stride4, stride8, stride16, stride16]


def build():
    """Builds the R50-DeAOT-L encoder (random weights; load a checkpoint for real ones)."""
    return ResNet50Encoder()
