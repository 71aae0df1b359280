"""Quality signals (samtrack_ops.signals): each signal on a synthetic case, and a swap on a real DAVIS clip."""

import numpy as np
import pytest

from samtrack_ops.signals import VANISHED_AT_BORDER, VANISHED_INSIDE, QualityMonitor


def _square(top, left, size=20, object_id=1, shape=(100, 100), label_map=None):
    label_map = np.zeros(shape, np.uint8) if label_map is None else label_map
    label_map[top:top + size, left:left + size] = object_id
    return label_map


def test_steady_object_is_not_suspicious():
    monitor = QualityMonitor()
    for step in range(4):
        signals = monitor.update(_square(30 + step, 30), {1: 0.9})
    assert signals.objects[1].suspicion < 0.2 and signals.suspicion == signals.objects[1].suspicion
    assert signals.objects[1].shift == pytest.approx(1 / 20) and signals.reason == "shift"
    assert signals.objects[1].components == 1 and signals.objects[1].swap_with == 0


def test_area_jump_fragmentation_and_confidence_drop():
    monitor = QualityMonitor()
    monitor.update(_square(30, 30), {1: 0.9})
    grown = monitor.update(_square(30, 30, size=40), {1: 0.9})
    assert grown.objects[1].area_jump == pytest.approx(2.0) and grown.objects[1].suspicion == 1.0
    split = _square(30, 30, size=40)
    split[:, 50] = 0  # cut in two
    fragments = monitor.update(split, {1: 0.9})
    assert fragments.objects[1].components == 2 and fragments.objects[1].suspicion == pytest.approx(0.5)
    dropped = monitor.update(split, {1: 0.45})
    assert dropped.objects[1].confidence_drop == pytest.approx(0.5) and dropped.suspicion == 1.0


def test_vanishing_inside_the_picture_is_worse_than_at_the_border_and_reappearing_is_flagged():
    monitor = QualityMonitor()
    both = _square(40, 40, object_id=1, label_map=_square(0, 80, object_id=2))  # 2 touches the border
    monitor.update(both)
    gone = monitor.update(np.zeros((100, 100), np.uint8))
    assert gone.vanished == {1: False, 2: True} and gone.suspicion == VANISHED_INSIDE
    monitor.update(_square(40, 40))
    only_border = QualityMonitor()
    only_border.update(_square(0, 80, object_id=2))
    assert only_border.update(np.zeros((100, 100), np.uint8)).suspicion == VANISHED_AT_BORDER
    back = monitor.update(_square(0, 80, object_id=2, label_map=_square(40, 40)))
    assert back.objects[2].reappeared and not back.objects[1].reappeared


@pytest.mark.parametrize("gap", [0, 30])  # overlapping masks (IoU) or far apart (centroids)
def test_objects_exchanging_places_are_a_swap(gap):
    monitor = QualityMonitor()
    left, right = 10, 30 + gap
    before = _square(40, left, object_id=1, label_map=_square(40, right, object_id=2))
    monitor.update(before)
    monitor.update(before)
    swapped = monitor.update(_square(40, left, object_id=2, label_map=_square(40, right, object_id=1)))
    assert swapped.objects[1].swap_with == 2 and swapped.objects[2].swap_with == 1 and swapped.suspicion == 1.0


def _two_objects(mask):
    """A DAVIS foreground mask (H, W) bool split at its median column into objects 1 (left) and 2 (right)."""
    label_map = np.zeros(mask.shape, np.uint8)
    columns = np.nonzero(mask)[1]
    split = int(np.median(columns))
    label_map[:, :split][mask[:, :split]] = 1
    label_map[:, split:][mask[:, split:]] = 2
    return label_map


def test_swapped_ids_on_a_davis_clip_are_flagged_as_a_swap_and_nothing_else_is(davis_frames):
    clip = davis_frames("bmx-trees", 12)
    maps = [_two_objects(mask) for mask in clip.masks]
    swap_at = 7
    for label_map in maps[swap_at:]:
        ones = label_map == 1
        label_map[label_map == 2] = 1
        label_map[ones] = 2
    monitor = QualityMonitor()
    signals = [monitor.update(label_map) for label_map in maps]
    swapped = [index for index, frame in enumerate(signals) if any(o.swap_with for o in frame.objects.values())]
    assert swapped == [swap_at]
    assert signals[swap_at].objects[1].swap_with == 2
    assert max(range(len(signals)), key=lambda index: signals[index].suspicion) == swap_at
