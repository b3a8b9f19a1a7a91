"""The review export of parts whose coarse capture has several light steps: one exported image per
view (a capture's extra frames `<channel>@coarse_<view>` are never images of their own), each — with
the production recipe's `CoarseStack` — the detector's channel stack of the archived capture, as
the live cycle builds it; a part whose archive lacks a frame is skipped, never exported mono; the
retraining job imports such an export as a set of the same channels as a generated one, and refuses
a mono export for a stacking detector. Archives are written by the real cycle on the virtual cell."""
import json
import logging
import subprocess
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.sim.cell import station_config_dict
from inspector.access import AccessControl
from inspector.channels import LEGACY, detector_input
from inspector.demo import REFERENCE_RECIPE, run_sim_lot
from inspector.promotion import TRAIN, GateSplit, SplitRule
from inspector.recipe import Recipe
from inspector.results.sqlite_store import ResultStore
from inspector.review import CoarseStack, ReviewQueue, stacked_channels
from inspector.station_config import StationConfig
from tests.access_helpers import staff
from training.lights import DETECTOR_CHANNELS, coarse_program_dict

STATION = StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
EXTRA = ("bright", "dark", "seg_n", "seg_e", "seg_s", "seg_w")  # the steps after the first (mixed)


@pytest.fixture(scope="module")
def lot(tmp_path_factory, model_paths):
    """One part inspected on the virtual cell with the seven-step coarse program (legacy detector
    input: the cycle runs the shipped model), every frame archived, its review item closed by QA."""
    root = tmp_path_factory.mktemp("multistep_lot")
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    data["light_programs"]["coarse"] = coarse_program_dict()
    recipe_path = root / "recipe.json"
    recipe_path.write_text(json.dumps(data))
    run_sim_lot(1, first_seed=900_000, speed_factor=20, recipe_path=recipe_path, db=root / "results.db",
                archive_dir=root / "archive", out=lambda *_: None)
    with ResultStore(root / "results.db") as store:
        anna = staff(AccessControl(store), ("ines", "integrator", "1111"), ("anna", "qa", "2222"))["anna"]
        queue = ReviewQueue(store)
        queue.enqueue_committed()
        # a missed defect drawn on the dark-field frame of the east view (see the last test)
        queue.add_box(queue.items()[0], "dark@coarse_east", (30, 40, 50, 52), "burr", anna)
        for item in queue.items():
            queue.close(item, anna)
        record = store.get(1)
    loaded = Recipe.load(recipe_path)  # as run: the shipped detector's channels
    recipe = replace(loaded, views=tuple(replace(v, channels=LEGACY) for v in loaded.views))  # first frames only
    stacking = replace(loaded, views=tuple(replace(v, channels=DETECTOR_CHANNELS) for v in loaded.views))
    return root, record, recipe, stacking


def export(root: Path, out: Path, stack: CoarseStack | None = None) -> dict:
    with ResultStore(root / "results.db") as store:
        return json.loads(ReviewQueue(store).export_coco(out, coarse_stack=stack).read_text())


def test_the_archive_holds_every_step_and_the_export_one_stack_per_view(lot, tmp_path):
    root, record, recipe, stacking = lot
    stems = {Path(p).stem for p in record.image_paths}
    for view in recipe.views:
        assert {f"coarse_{view.name}", *(f"{ch}@coarse_{view.name}" for ch in EXTRA)} <= stems
    doc = export(root, tmp_path / "stacked", CoarseStack(stacking, STATION))
    names = [Path(im["file_name"]).name for im in doc["images"]]
    assert not [n for n in names if "@" in n]
    coarse = {im["attributes"]["archived_path"]: im for im in doc["images"] if "_coarse_" in im["file_name"]}
    assert sorted(Path(p).stem for p in coarse) == sorted(f"coarse_{v.name}" for v in recipe.views)
    assert doc["info"]["channels"] == list(DETECTOR_CHANNELS)
    for archived, image in coarse.items():
        exported = cv2.imread(str(tmp_path / "stacked" / image["file_name"]), cv2.IMREAD_UNCHANGED)
        folder, base = Path(archived).parent, Path(archived).stem
        frames = {"mixed": cv2.imread(archived, cv2.IMREAD_GRAYSCALE),
                  **{ch: cv2.imread(str(folder / f"{ch}@{base}.png"), cv2.IMREAD_GRAYSCALE) for ch in EXTRA}}
        expected = detector_input(DETECTOR_CHANNELS, frames, STATION.lights.segments, 0.05)
        assert exported.shape == expected.shape == (image["height"], image["width"], 3)
        assert np.array_equal(exported, expected)
        assert not np.array_equal(exported[:, :, 0], exported[:, :, 1])  # bright and dark differ
    fine = [im for im in doc["images"] if "_fine_" in im["file_name"]]
    for image in fine:  # fine shots as archived (their program has one step)
        assert cv2.imread(str(tmp_path / "stacked" / image["file_name"]), cv2.IMREAD_UNCHANGED).ndim == 2


def test_without_a_stacker_the_export_is_mono_and_never_holds_extra_frames(lot, tmp_path):
    root, record, recipe, _ = lot
    plain = export(root, tmp_path / "plain")
    legacy = export(root, tmp_path / "legacy", CoarseStack(recipe, STATION))
    for doc, out in ((plain, tmp_path / "plain"), (legacy, tmp_path / "legacy")):
        assert not [im for im in doc["images"] if "@" in im["file_name"]]
        coarse = [im for im in doc["images"] if "_coarse_" in im["file_name"]]
        assert len(coarse) == len(recipe.views)
        assert all(cv2.imread(str(out / im["file_name"]), cv2.IMREAD_UNCHANGED).ndim == 2 for im in coarse)
    assert "channels" not in plain["info"] and legacy["info"]["channels"] == list(LEGACY)


def test_a_part_missing_an_extra_frame_is_skipped_not_exported_mono(lot, tmp_path, caplog):
    root, record, _, stacking = lot
    gone = next(Path(p) for p in record.image_paths if Path(p).stem == "dark@coarse_north")
    hidden = gone.with_name("hidden.png")
    gone.rename(hidden)
    try:
        with caplog.at_level(logging.WARNING, logger="inspector.review.coco_export"):
            doc = export(root, tmp_path / "missing", CoarseStack(stacking, STATION))
    finally:
        hidden.rename(gone)
    stems = [Path(im["attributes"]["archived_path"]).stem for im in doc["images"]]
    assert "coarse_north" not in stems and "coarse_top" in stems
    (line,) = [r.getMessage() for r in caplog.records if "coarse_north" in r.getMessage()]
    assert record.serial in line and "dark@coarse_north.png" in line and "skipped" in line


def test_views_stacking_different_channels_are_refused_naming_them(lot):
    _, _, recipe, stacking = lot
    mixed = replace(stacking, views=(replace(stacking.views[0], channels=("bright", "dark")), *stacking.views[1:]))
    with pytest.raises(ValueError, match=r"views stack different detector channels \(top: \['bright', 'dark'\]; "
                                         r"north, east, south, west: \['bright', 'dark', 'curvature'\]\)"):
        CoarseStack(mixed, STATION)
    assert stacked_channels(recipe) == LEGACY and stacked_channels(stacking) == DETECTOR_CHANNELS


def test_the_retraining_job_imports_the_stacks_as_a_set_that_trains_with_a_generated_one(lot, tmp_path, request):
    from training.data.generate import generate_coarse, open_sets
    from ui.retrain_job import RetrainRefused, retrain_steps

    root, record, _, stacking = lot
    rule = next(r for r in (SplitRule(0.5, f"pick-{i}") for i in range(100)) if r.side(record.serial) == TRAIN)
    sides = ResultStore(tmp_path / "split.db")  # where the split keeps each part's side
    request.addfinalizer(sides.close)
    split = GateSplit(sides, rule)
    with ResultStore(root / "results.db") as store:
        queue = ReviewQueue(store)
        mono = queue.export_coco(tmp_path / "mono")
        stacked = queue.export_coco(tmp_path / "stacked", coarse_stack=CoarseStack(stacking, STATION))
    with pytest.raises(RetrainRefused, match=r"holds its coarse frames as mono first frames, but the production "
                                             r"recipe's detector takes stacks of \['bright', 'dark', 'curvature'\]"):
        retrain_steps("detector", mono, tmp_path / "job0", 1, split=split, channels=DETECTOR_CHANNELS)
    generated = generate_coarse(tmp_path / "data" / "coarse-train", "smoke", 1, offset=20, faces=("top",)).root
    steps = retrain_steps("detector", stacked, tmp_path / "job", 1, split=split, data_root=tmp_path / "data",
                          channels=DETECTOR_CHANNELS)
    assert str(generated) in steps[1].command
    subprocess.run(steps[0].command, check=True, capture_output=True, text=True, timeout=300)  # import labels
    imported = tmp_path / "job" / "data"
    manifest = json.loads((imported / "manifest.json").read_text())
    assert manifest["channels"] == list(DETECTOR_CHANNELS) and manifest["images"] == len(stacking.views)
    sets, joined = open_sets([generated, imported])
    assert joined["channels"] == list(DETECTOR_CHANNELS) and len(sets) == 2
    # the mono export imports as a legacy set, which a stacked set refuses to train with
    from training.data.importer import import_coco
    from ui.retrain_job import review_subset
    import_coco(review_subset(mono, "coarse", split), tmp_path / "mono-set", kind="coarse")
    with pytest.raises(ValueError, match="hold different channels"):
        open_sets([generated, tmp_path / "mono-set"])


def test_a_box_drawn_on_an_extra_frame_counts_for_the_capture(lot, tmp_path):
    """A missed defect drawn on the dark-field frame of a capture is a box on that capture's exported
    image (the frames share the pose), never an image of its own."""
    root, _, _, stacking = lot
    doc = export(root, tmp_path / "boxed", CoarseStack(stacking, STATION))
    assert not [im for im in doc["images"] if "@" in im["file_name"]]
    east = next(im for im in doc["images"] if im["file_name"].endswith("_coarse_east.png"))
    boxes = [a["bbox"] for a in doc["annotations"] if a["image_id"] == east["id"] and a["attributes"]["action"] == "add_box"]
    assert boxes == [[30, 40, 20, 12]]
