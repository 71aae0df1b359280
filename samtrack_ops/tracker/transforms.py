"""The reference input transform of DeAOT as SAM-Track uses it: resize rule, normalisation, mask resize."""

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from samtrack_ops.video import check_frame

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def network_input_size(frame_size, config):
    """(H, W) of the frame -> (H', W') fed to the network.

    The long edge is limited to ``config.max_long_edge`` (sides truncated to int), then each side
    is snapped to 16k + 1 (align_corners) or 16k, rounding half to even like NumPy.
    """
    height, width = (float(side) for side in frame_size)
    long_edge = max(height, width)
    if long_edge > config.max_long_edge:
        scale = float(config.max_long_edge) / long_edge
        height, width = scale * height, scale * width
    offset = 1 if config.align_corners else 0
    return tuple(_snap(int(side), config.stride, offset) for side in (height, width))


def _snap(side, stride, offset):
    if (side - offset) % stride == 0:
        return side
    return int(np.around((side - offset) / stride) * stride + offset)


def preprocess_frame(frame, input_size, device, dtype=torch.float32):
    """frame: (H, W, 3) uint8 RGB -> (1, 3, H', W') normalised tensor of dtype on device.

    Bicubic OpenCV resize when the size changes; normalisation in float64 as the reference does, then
    one rounding to dtype.
    """
    check_frame(frame)
    height, width = input_size
    if frame.shape[:2] != (height, width):
        frame = cv2.resize(frame, dsize=(width, height), interpolation=cv2.INTER_CUBIC)
    normalised = (frame / 255.0 - IMAGE_MEAN) / IMAGE_STD
    tensor = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1))).to(dtype)
    return tensor.unsqueeze(0).to(device)


def nearest_indices(in_size, out_size):
    """Source index of every output index under PyTorch's legacy ``nearest`` rule: (out_size,) int64.

    Only indices come out; float32 positions reproduce the reference's float32 mask interpolation.
    """
    positions = torch.arange(in_size, dtype=torch.float32).view(1, 1, in_size)
    return F.interpolate(positions, size=out_size, mode="nearest").view(-1).long().numpy()


def resize_label_map(label_map, size):
    """label_map: (H, W) integer ids -> (h, w) by nearest neighbour with the legacy rule."""
    rows = nearest_indices(label_map.shape[0], size[0])
    cols = nearest_indices(label_map.shape[1], size[1])
    return label_map[rows[:, None], cols[None, :]]
