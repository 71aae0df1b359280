"""Frame sources on the shared DAVIS excerpt and blackswan.mp4, and their errors."""

import gc

import cv2
import numpy as np
import pytest

from samtrack_ops.video import SpillStore, VideoError, open_frames


def test_mp4_decodes_all_frames_as_rgb(blackswan_mp4, davis_frames):
    source = open_frames(blackswan_mp4)
    assert source.frame_count == 50
    frames = list(source)
    assert len(frames) == 50
    assert frames[0].shape == (480, 854, 3) and frames[0].dtype == np.uint8
    reference = davis_frames("blackswan", 1).frames[0].astype(int)
    rgb_error = np.abs(frames[0].astype(int) - reference).mean()
    bgr_error = np.abs(frames[0][..., ::-1].astype(int) - reference).mean()
    assert rgb_error < 10 and rgb_error < bgr_error / 2  # same picture, channels in RGB order


def test_image_folder_is_sorted_and_rgb(davis_dir, davis_frames):
    source = open_frames(davis_dir / "JPEGImages" / "480p" / "bmx-trees")
    assert source.frame_count == 25
    expected = davis_frames("bmx-trees", 3).frames
    for frame, reference in zip(source, expected):
        np.testing.assert_array_equal(frame, reference)


def test_arrays_stream_lazily_and_once():
    consumed = []

    def frames():
        for index in range(4):
            consumed.append(index)
            yield np.full((6, 8, 3), index, np.uint8)

    source = open_frames(frames())
    assert source.frame_count is None and consumed == []
    iterator = iter(source)
    assert next(iterator)[0, 0, 0] == 0 and consumed == [0]
    assert len(list(iterator)) == 3


def test_stacked_array_has_a_count():
    source = open_frames(np.zeros((3, 4, 5, 3), np.uint8))
    assert source.frame_count == 3 and len(list(source)) == 3


@pytest.mark.parametrize("frames, message", [
    ([np.zeros((4, 5), np.uint8)], "HxWx3 uint8"),
    ([np.zeros((4, 5, 3), np.float32)], "HxWx3 uint8"),
    ([np.zeros((4, 5, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)], "one size"),
    ([], "no frames"),
])
def test_bad_arrays_are_named(frames, message):
    with pytest.raises(VideoError, match=message):
        list(open_frames(frames))


def test_missing_video(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        open_frames(tmp_path / "nope.mp4")


def test_unreadable_video(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError, match="broken.mp4"):
        list(open_frames(path))


def test_empty_folder_and_damaged_image(tmp_path):
    with pytest.raises(VideoError, match="no images"):
        open_frames(tmp_path)
    cv2.imwrite(str(tmp_path / "00000.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "00001.png").write_bytes(b"garbage")
    frames = iter(open_frames(tmp_path))
    assert next(frames).shape == (4, 4, 3)
    with pytest.raises(VideoError, match="00001.png"):
        next(frames)


def test_not_frames_at_all():
    with pytest.raises(VideoError, match="iterable"):
        open_frames(42)


def test_spill_store_round_trip_and_cleanup():
    store = SpillStore()
    label_map = np.arange(12, dtype=np.uint16).reshape(3, 4)
    store.put("pass1-3", label_map)
    np.testing.assert_array_equal(store.get("pass1-3"), label_map)
    assert store.get("pass1-4") is None
    store.close()
    assert not store.folder.exists()


def test_spill_store_left_open_is_removed_when_collected():
    store = SpillStore()
    store.put(0, np.zeros(3))
    folder = store.folder
    del store
    gc.collect()
    assert not folder.exists()
