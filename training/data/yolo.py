"""YOLO txt labels (one file per image: ``class cx cy w h``, normalised) and the data.yaml that
names a training set and its validation set.

Layout as Ultralytics expects: ``<root>/images/<stem>.png`` beside ``<root>/labels/<stem>.txt``.
The labels hold the defect kinds only, numbered as the station's detector numbers them: nuisances
(dust, machining marks) are background to the detector, so a peer trained on this export learns the
same task. COCO is the lossless format (nuisances and attributes kept), YOLO the convenient one.

The data.yaml carries an absolute ``path`` (Ultralytics resolves a relative one against its own
datasets folder or the current directory, never against the file), and its ``val`` is a different
set from ``train``: a set validated on its own training images says nothing.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Sequence

from .records import DEFECT_CLASSES, Annotation, ImageRecord, LabelledSet


class YoloExportError(ValueError):
    pass


def label_path(root: Path, image: ImageRecord) -> Path:
    rel = PurePosixPath(image.file_name)
    parts = ["labels" if p == "images" else p for p in rel.parent.parts]
    return root.joinpath(*parts, rel.stem + ".txt")


def write_yolo(data: LabelledSet, classes: Sequence[str] = DEFECT_CLASSES) -> list[Path]:
    """One label file per image with the boxes of `classes` (others are background)."""
    index = {name: i for i, name in enumerate(classes)}
    written = []
    for image in data.images:
        lines = []
        for ann in image.annotations:
            if ann.category not in index:
                continue
            cx, cy = ann.center
            lines.append(f"{index[ann.category]} {cx / image.width:.6f} {cy / image.height:.6f} "
                         f"{ann.width / image.width:.6f} {ann.height / image.height:.6f}")
        path = label_path(data.root, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        written.append(path)
    return written


def write_data_yaml(out: Path | str, train: Sequence[Path | str], val: Path | str,
                    classes: Sequence[str] = DEFECT_CLASSES) -> Path:
    """A data.yaml for Ultralytics: `train` set folder(s) and a separate `val` set folder, each with
    images/ and labels/ (as written by `write_yolo`)."""
    out = Path(out).resolve()
    train_roots = [Path(t).resolve() for t in train]
    val_root = Path(val).resolve()
    if not train_roots:
        raise YoloExportError("YOLO data.yaml: no training set given")
    for root in (*train_roots, val_root):
        if not (root / "images").is_dir() or not (root / "labels").is_dir():
            raise YoloExportError(f"YOLO set {root}: no images/ and labels/ folders (not a set written by "
                                  "`python -m training data`)")
    if val_root in train_roots:
        raise YoloExportError(f"YOLO data.yaml: the validation set {val_root} is also a training set")
    base = out.parent

    def rel(root: Path) -> str:
        images = root / "images"
        return images.relative_to(base).as_posix() if images.is_relative_to(base) else images.as_posix()

    train_lines = "\n".join(f"  - {rel(r)}" for r in train_roots)
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(classes))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# written by python -m training data yolo: defect kinds only (nuisances are background)\n"
                   f"path: {base.as_posix()}\ntrain:\n{train_lines}\nval: {rel(val_root)}\n"
                   f"names:\n{names}\n", encoding="utf-8")
    return out


def read_yolo(root: Path | str, categories: Sequence[str], images: list[ImageRecord]) -> LabelledSet:
    """Labels for the given images (names and sizes known) read back from their txt files."""
    root = Path(root)
    out = []
    for image in images:
        record = ImageRecord(image.file_name, image.width, image.height, attributes=dict(image.attributes))
        path = label_path(root, image)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 5:
                raise YoloExportError(f"YOLO label {path}:{number}: expected 'class cx cy w h', got {line!r}")
            cls = int(fields[0])
            if not 0 <= cls < len(categories):
                raise YoloExportError(f"YOLO label {path}:{number}: class {cls} is not one of 0..{len(categories) - 1}")
            cx, cy, w, h = (float(v) for v in fields[1:])
            cx, w = cx * image.width, w * image.width
            cy, h = cy * image.height, h * image.height
            record.annotations.append(Annotation(categories[cls], (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
        out.append(record)
    return LabelledSet(root, tuple(categories), out)
