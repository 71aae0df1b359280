"""The ``export_tracks`` and ``evaluate_tracks`` operators, run through FiftyOne's operator executor."""

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionError

from samtrack_ops.export import import_davis

EXPORT = "@samtrack/samtrack/export_tracks"
EVALUATE = "@samtrack/samtrack/evaluate_tracks"


@pytest.fixture(scope="module")
def davis_dataset(davis_dir, tmp_path_factory):
    """libby and car-shadow from DAVIS with frames.ground_truth, and frames.tracks = the ground truth
    emptied from frame 19 on (libby only)."""
    dataset = import_davis(davis_dir, tmp_path_factory.mktemp("videos"), sequences=["car-shadow", "libby"])
    for sample in dataset.iter_samples(autosave=True):
        for frame_number, frame in sample.frames.items():
            keep = sample.filepath.endswith("car-shadow.mp4") or frame_number < 19
            frame["tracks"] = frame["ground_truth"] if keep else fo.Detections()
    yield dataset
    dataset.delete()


def _export(dataset, view=None, **params):
    return foo.execute_operator(EXPORT, dataset=dataset, view=view, params=params).result


def test_operators_are_registered():
    assert foo.get_operator(EXPORT).config.name == "export_tracks"
    assert foo.get_operator(EVALUATE).config.name == "evaluate_tracks"


def test_export_tracks_writes_each_format(davis_dataset, tmp_path):
    coco = _export(davis_dataset, label_field="tracks", format="coco", export_dir=str(tmp_path / "coco"))
    labels = COCO(coco["written"])
    assert len(labels.imgs) == 50
    assert {a["track_id"] for a in labels.anns.values()} == {1}
    davis = _export(davis_dataset, label_field="tracks", format="davis", export_dir=str(tmp_path / "davis"))
    assert (tmp_path / "davis" / "Annotations" / "480p" / "libby" / "00024.png").is_file()
    assert davis["written"] == str(tmp_path / "davis")
    ytvis = _export(davis_dataset, label_field="tracks", format="ytvis", export_dir=str(tmp_path / "ytvis"))
    content = json.loads(open(ytvis["written"]).read())
    libby = next(a for a in content["annotations"] if a["video_id"] == 2)
    assert libby["segmentations"][18:] == [None] * 7 and None not in libby["segmentations"][:18]


def test_export_tracks_exports_only_the_given_view(davis_dataset, tmp_path):
    view = davis_dataset.match(fo.ViewField("filepath").ends_with("libby.mp4"))
    result = _export(davis_dataset, view=view, label_field="tracks", format="coco", export_dir=str(tmp_path / "c"))
    assert {image["video"] for image in COCO(result["written"]).imgs.values()} == {"libby"}


def test_export_tracks_refuses_to_overwrite(davis_dataset, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(ExecutionError, match="already exists"):
        _export(davis_dataset, label_field="tracks", format="davis", export_dir=str(tmp_path / "taken"))
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep"
    with pytest.raises(ExecutionError, match="label_field"):
        _export(davis_dataset, label_field="nope", format="davis", export_dir=str(tmp_path / "other"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_evaluate_tracks_stores_a_sortable_run(davis_dataset):
    dataset = davis_dataset.clone()
    try:
        result = foo.execute_operator(
            EVALUATE, dataset=dataset, params={"pred_field": "tracks", "gt_field": "ground_truth", "eval_key": "jf"}
        ).result
        assert result["eval_key"] == "jf"
        assert result["JF_mean"] == pytest.approx((1 + 17 / 23) / 2)
        assert dataset.list_evaluations() == ["jf"]
        assert dataset.sort_by("jf_JF").values("jf_JF") == pytest.approx([17 / 23, 1.0])
        with pytest.raises(ExecutionError, match="already exists"):
            foo.execute_operator(
                EVALUATE, dataset=dataset, params={"pred_field": "ground_truth", "gt_field": "tracks", "eval_key": "jf"}
            )
        assert np.allclose(sorted(dataset.values("jf_JF")), [17 / 23, 1.0])
    finally:
        dataset.delete()
