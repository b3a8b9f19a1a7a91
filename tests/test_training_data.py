"""Data sets: seed splits, deterministic generation, COCO / YOLO round trips and the COCO importer."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from training.data.coco import CocoError, read_coco, write_coco
from training.data.generate import generate_coarse, generate_fine, open_set, set_fingerprint
from training.data.importer import import_coco
from training.data.records import (CLASSIFIER_CLASSES, COARSE_CATEGORIES, DEFECT_CLASSES, Annotation, ImageRecord, LabelledSet,
                                   classifier_label)
from training.data.yolo import YoloExportError, read_yolo, write_data_yaml, write_yolo
from training.splits import SPLITS, seeds_for


def test_split_seed_ranges_are_disjoint_and_bounded():
    spans = [set(seeds_for(name, 50)) for name in ("train", "val", "heldout")]
    assert not (spans[0] & spans[1]) and not (spans[0] & spans[2]) and not (spans[1] & spans[2])
    with pytest.raises(ValueError, match="holds seeds"):
        seeds_for("val", SPLITS["val"].capacity + 1)
    with pytest.raises(ValueError, match="unknown split"):
        seeds_for("test", 3)


def test_classifier_labels():
    assert CLASSIFIER_CLASSES[0] == "ok"
    assert [classifier_label(c) for c in ("scratch", "dust", "machining_mark", "clean_spot")] == ["scratch", "ok", "ok", "ok"]


def sample_set(root):
    images = [ImageRecord("images/a.png", 64, 48, [Annotation("scratch", (10.0, 12.0, 14.5, 20.0), {"size_mm": 0.3}),
                                                   Annotation("dust", (30.0, 30.0, 32.0, 32.0), {"is_nuisance": True})],
                          {"part_seed": 7, "face": "top"}),
              ImageRecord("images/b.png", 64, 48, [], {"part_seed": 8})]
    return LabelledSet(root, COARSE_CATEGORIES, images, {"split": "smoke"})


def test_coco_round_trip(tmp_path):
    data = sample_set(tmp_path)
    path = write_coco(data, tmp_path / "annotations.coco.json")
    doc = json.loads(path.read_text())
    assert doc["annotations"][0]["bbox"] == [10.0, 12.0, 4.5, 8.0] and doc["categories"][0] == {
        "id": 1, "name": "scratch", "supercategory": "defect"}
    back = read_coco(path, categories=COARSE_CATEGORIES)
    assert back.categories == COARSE_CATEGORIES and back.info == {"split": "smoke"}
    assert [(i.file_name, i.attributes) for i in back.images] == [(i.file_name, i.attributes) for i in data.images]
    assert [(a.category, a.box_px, a.attributes) for a in back.images[0].annotations] == \
        [(a.category, a.box_px, a.attributes) for a in data.images[0].annotations]


def test_coco_import_accepts_tool_output_and_names_problems(tmp_path):
    """As CVAT writes it: ids not from 1, extra keys, no attributes."""
    doc = {"licenses": [], "info": {}, "categories": [{"id": 7, "name": "dent", "supercategory": ""}],
           "images": [{"id": 3, "file_name": "x.png", "width": 10, "height": 10, "flickr_url": ""}],
           "annotations": [{"id": 1, "image_id": 3, "category_id": 7, "bbox": [1, 2, 3, 4], "segmentation": []}]}
    path = tmp_path / "cvat.json"
    path.write_text(json.dumps(doc))
    data = read_coco(path, categories=COARSE_CATEGORIES)
    assert data.images[0].annotations[0].box_px == (1.0, 2.0, 4.0, 6.0)
    doc["categories"][0]["name"] = "crack"
    path.write_text(json.dumps(doc))
    with pytest.raises(CocoError, match="cvat.json: category 'crack' is not one of"):
        read_coco(path, categories=COARSE_CATEGORIES)
    doc["categories"][0]["name"] = "dent"
    doc["annotations"][0]["image_id"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(CocoError, match="refers to unknown"):
        read_coco(path)
    path.write_text("{}")
    with pytest.raises(CocoError, match="lacks the list 'images'"):
        read_coco(path)


def test_yolo_labels_hold_the_defect_kinds_numbered_as_the_detector(tmp_path):
    data = sample_set(tmp_path)
    write_yolo(data)
    assert (tmp_path / "labels" / "a.txt").read_text() == "0 0.191406 0.333333 0.070312 0.166667\n"  # dust dropped
    assert (tmp_path / "labels" / "b.txt").read_text() == ""
    back = read_yolo(tmp_path, DEFECT_CLASSES, data.images)
    assert [a.category for a in back.images[0].annotations] == ["scratch"]
    assert back.images[0].annotations[0].box_px == pytest.approx(data.images[0].annotations[0].box_px, abs=1e-3)
    (tmp_path / "labels" / "b.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(YoloExportError, match=r"b.txt:1: class 7 is not one of 0..3"):
        read_yolo(tmp_path, DEFECT_CLASSES, data.images)


def test_yolo_data_yaml_loads_from_any_directory_with_a_separate_val_set(tmp_path, monkeypatch):
    for name in ("train", "val"):
        (tmp_path / "sets" / name / "images").mkdir(parents=True)
        write_yolo(sample_set(tmp_path / "sets" / name))
    out = write_data_yaml(tmp_path / "sets" / "coarse-yolo.yaml", [tmp_path / "sets" / "train"], tmp_path / "sets" / "val")
    monkeypatch.chdir(tmp_path.parent)  # not the file's folder: the paths must not depend on it
    doc = yaml.safe_load(out.read_text())
    root = Path(doc["path"])
    assert root.is_absolute() and (root / doc["val"]).resolve() == (tmp_path / "sets" / "val" / "images").resolve()
    assert [(root / t).resolve() for t in doc["train"]] == [(tmp_path / "sets" / "train" / "images").resolve()]
    assert doc["names"] == dict(enumerate(DEFECT_CLASSES))
    with pytest.raises(YoloExportError, match="the validation set .* is also a training set"):
        write_data_yaml(out, [tmp_path / "sets" / "train"], tmp_path / "sets" / "train")
    with pytest.raises(YoloExportError, match="no images/ and labels/ folders"):
        write_data_yaml(out, [tmp_path / "sets" / "train"], tmp_path / "nowhere")


def test_generation_is_deterministic_and_fingerprinted(tmp_path):
    a = generate_coarse(tmp_path / "a", "smoke", 1, offset=3, faces=("top", "east"))
    b = generate_coarse(tmp_path / "b", "smoke", 1, offset=3, faces=("top", "east"))
    assert a.info["fingerprint"] == b.info["fingerprint"]
    assert len(a.images) == 2 and a.images[0].attributes["part_seed"] == SPLITS["smoke"].start + 3
    reopened, manifest = open_set(tmp_path / "a")
    assert manifest["fingerprint"] == a.info["fingerprint"] == set_fingerprint(reopened)
    assert manifest["seed_range"] == [SPLITS["smoke"].start + 3] * 2
    assert (tmp_path / "a" / "labels" / f"{a.images[0].file_name[7:-4]}.txt").is_file()
    other = generate_coarse(tmp_path / "c", "smoke", 1, offset=4, faces=("top",))
    assert other.info["fingerprint"] != a.info["fingerprint"]


def test_fine_set_marks_one_target_per_patch(tmp_path):
    data = generate_fine(tmp_path / "f", "smoke", 1, clean_spots=2)
    assert data.images and all(im.width == im.height == 320 for im in data.images)
    for image in data.images:
        targets = [a for a in image.annotations if a.attributes.get("target")]
        assert len(targets) == 1
        cx, cy = targets[0].center
        assert abs(cx - 160) <= 1 and abs(cy - 160) <= 1
    assert sum(a.category == "clean_spot" for im in data.images for a in im.annotations) == 2


def test_import_coco_makes_a_trainable_set_and_refuses_heldout_parts(tmp_path):
    src = generate_coarse(tmp_path / "src", "smoke", 1, faces=("top",))
    imported = import_coco(tmp_path / "src" / "annotations.coco.json", tmp_path / "imp")
    assert imported.info["fingerprint"] == src.info["fingerprint"]
    data, manifest = open_set(tmp_path / "imp")
    assert manifest["kind"] == "coarse" and len(data.images) == 1
    doc = json.loads((tmp_path / "src" / "annotations.coco.json").read_text())
    doc["images"][0]["attributes"]["part_seed"] = SPLITS["heldout"].start + 5
    (tmp_path / "src" / "leak.json").write_text(json.dumps(doc))
    with pytest.raises(CocoError, match="held-out parts"):
        import_coco(tmp_path / "src" / "leak.json", tmp_path / "imp2")
