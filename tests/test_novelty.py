"""Novelty score of the fine classifier ("ok" needs positive evidence), leave-one-kind-out training
and parts whose defects are of chosen kinds only."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from hardware.sim.part import DEFECT_KINDS, make_part
from inspector.inference.classifier import Classifier
from inspector.inference.loaded_model import load_model
from inspector.inference.model_package import ModelContractError, ModelInfo, metadata_for, parse_metadata
from tests.test_inference_classifier import INFO, softmax_model

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "classifier.onnx"


# ---------------------------------------------------------------- parts of chosen kinds

def test_make_part_kinds_limits_defect_kinds_and_leaves_default_parts_alone():
    # pinned from the code before `kinds` existed: the default draw must not change for any seed
    part = make_part(200003, defect_probability=1.0, max_defects=6)
    assert [(d.kind, d.face, d.u_mm, d.v_mm) for d in part.defects] == [
        ("stain", "west", -0.754, -10.596), ("stain", "east", -2.944, 3.421), ("scratch", "top", -11.612, 3.146),
        ("dent", "west", 0.345, 2.269), ("dust", "north", -13.127, 2.546)]
    assert part == make_part(200003, defect_probability=1.0, max_defects=6, kinds=None)
    for kind in DEFECT_KINDS:
        parts = [make_part(seed, defect_probability=1.0, max_defects=4, kinds=(kind,)) for seed in range(40)]
        assert all(p.true_defects and {d.kind for d in p.true_defects} == {kind} for p in parts)
        assert any(p.defects[-1].is_nuisance for p in parts)  # nuisances still drawn
    two = [make_part(seed, defect_probability=1.0, max_defects=4, kinds=("dent", "burr")) for seed in range(40)]
    assert {d.kind for p in two for d in p.true_defects} == {"dent", "burr"}
    for bad in ((), ("porosity",), "dent"):  # crack is drawn on request (NEW_KINDS); porosity is no kind at all
        with pytest.raises(ValueError, match="make_part kinds"):
            make_part(1, kinds=bad)


# ---------------------------------------------------------------- contract and runtime

def test_novelty_limit_round_trips_through_metadata_and_is_validated():
    info = ModelInfo(**{**INFO.__dict__, "extra": {**INFO.extra, "novelty": {"limit": 17.25, "output": "novelty"}}})
    back = parse_metadata(metadata_for(info), "m.onnx")
    assert back.novelty_limit == 17.25 and back.extra["novelty"]["output"] == "novelty"
    assert parse_metadata(metadata_for(INFO), "m.onnx").novelty_limit is None
    for bad in ({"limit": -1.0}, {"limit": "high"}, {"rule": "no limit"}, [3.0]):
        props = {**metadata_for(INFO), "novelty": json.dumps(bad)}
        with pytest.raises(ModelContractError, match="m.onnx.*'novelty' needs a positive finite 'limit'"):
            parse_metadata(props, "m.onnx")


def test_old_model_without_novelty_output_loads_and_reports_none(tmp_path):
    clf = Classifier(load_model(softmax_model(tmp_path / "old.onnx", INFO), prefer=["CPU"]))
    assert not clf.has_novelty and clf.novelty_limit is None
    items = clf.classify_crops(np.zeros((3, 16, 16), np.uint8)).items
    assert len(items) == 3 and all(item.novelty is None for item in items)
    # a limit in the metadata without the output in the graph is a broken package, not an old one
    claims = ModelInfo(**{**INFO.__dict__, "extra": {**INFO.extra, "novelty": {"limit": 5.0}}})
    with pytest.raises(ModelContractError, match="claims.onnx.*no 'novelty' output"):
        Classifier(load_model(softmax_model(tmp_path / "claims.onnx", claims), prefer=["CPU"]))


# ---------------------------------------------------------------- the shipped model

def ood_crops(size: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:size, :size]
    checker = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 230, 20).astype(np.uint8)
    cross = np.full((size, size), 120, np.uint8)
    cross[size // 2 - 4:size // 2 + 4, 8:-8] = 250
    cross[8:-8, size // 2 - 4:size // 2 + 4] = 250
    return {"noise": rng.integers(0, 256, (size, size), dtype=np.uint8), "checkerboard": checker,
            "black": np.zeros((size, size), np.uint8), "cross": cross}


@pytest.fixture(scope="module")
def val_crops(tmp_path_factory):
    """Crops of a few validation-split parts, cut as the station cuts them (in-distribution)."""
    pytest.importorskip("torch")
    from training.data.generate import generate_fine
    from training.train_classifier import fixed_val_crops, load_samples

    data = generate_fine(tmp_path_factory.mktemp("val") / "fine", "val", 4, offset=40, clean_spots=3)
    samples = load_samples(data)
    return fixed_val_crops(samples), np.array([s.label for s in samples])


def test_shipped_model_scores_known_crops_below_and_strange_crops_above_its_limit(val_crops):
    clf = Classifier.open(str(SHIPPED), prefer=["CPU"])
    card = json.loads(SHIPPED.with_name("classifier.card.json").read_text())
    assert clf.has_novelty and clf.novelty_limit == card["novelty"]["limit"] > 0
    crops, labels = val_crops
    novelty = np.array([item.novelty for item in clf.classify_crops(crops).items])
    assert len(novelty) >= 30 and set(labels) >= {0, 1, 2, 3, 4}
    assert (novelty <= clf.novelty_limit).mean() >= 0.9, f"known crops above the limit: {np.sort(novelty)[-5:]}"
    strange = ood_crops()
    scores = {name: item.novelty for name, item in zip(strange, clf.classify_crops(np.stack(list(strange.values()))).items)}
    assert all(s > clf.novelty_limit for s in scores.values()), f"limit {clf.novelty_limit}: {scores}"


# ---------------------------------------------------------------- export chain and leave-one-kind-out

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    from training.data.generate import generate_fine
    root = tmp_path_factory.mktemp("tiny")
    return root, generate_fine(root / "fine", "smoke", 3, offset=20, clean_spots=2).root


def test_onnx_novelty_equals_the_torch_computation(tiny):
    import torch
    from training import novelty as nv
    from training import train_classifier as tc
    from training.export import export_classifier
    from training.loop import load_checkpoint
    from training.models.classifier import RoiClassifier

    root, fine = tiny
    best = tc.train_classifier(tc.ClassifierTrainConfig(train=fine, val=fine, out=root / "cls", epochs=1, batch_size=8,
                                                        max_steps=2, progress=False))
    result = export_classifier(best, fine, root / "models" / "classifier.onnx", golden=8)
    assert result.parity_ok and result.parity["novelty_max_rel_diff"] < 1e-4
    clf = Classifier.open(str(result.path), prefer=["CPU"])
    assert [o.name for o in onnx.load(str(result.path)).graph.output] == ["probabilities", "novelty"]
    assert clf.novelty_limit == result.info.extra["novelty"]["limit"] == json.loads(
        (root / "models" / "classifier.card.json").read_text())["novelty"]["limit"]

    state = load_checkpoint(best)
    model = RoiClassifier(width=int(state["extra"]["width"]))
    model.load_state_dict(state["model"])
    fit = nv.fit(nv.embeddings(model, np.random.default_rng(0).normal(size=(40, 1, 64, 64)).astype(np.float32)),
                 np.repeat(np.arange(5), 8))
    wrapped = fit.attach(model)
    crops = np.stack(list(ood_crops().values()) + [np.full((64, 64), 90, np.uint8)])
    x = torch.from_numpy(tc.to_input(crops)[:, None])
    with torch.no_grad():
        probs, novelty = (t.numpy() for t in wrapped(x))
    reference = fit.score(nv.embeddings(model, x.numpy()))
    np.testing.assert_allclose(novelty, reference, rtol=1e-4)
    from training.export import onnx_bytes, save_with_metadata
    path = save_with_metadata(onnx_bytes(wrapped, x[:2], ["probabilities", "novelty"],
                                         {"image": {0: "N"}, "probabilities": {0: "N"}, "novelty": {0: "N"}}),
                              result.info, root / "refit.onnx")
    items = Classifier.open(str(path), prefer=["CPU"]).classify_crops(crops).items
    np.testing.assert_allclose([i.novelty for i in items], reference, rtol=1e-4)
    np.testing.assert_allclose([[i.scores[c] for c in ("ok",) + DEFECT_KINDS] for i in items], probs, atol=1e-5)


def test_leave_one_kind_out_never_sees_the_kind(tiny):
    from training.data.generate import open_set
    from training import train_classifier as tc

    root, fine = tiny
    data, _ = open_set(fine)
    kinds = {a.category for r in data.images for a in r.annotations}
    kind = next(k for k in DEFECT_KINDS if k in kinds)
    kept = tc.load_samples(data, exclude_kind=kind)
    assert kept and kind not in {s.category for s in kept}
    # not only its own patches: any patch where the kind shows (beside another target) goes too
    clean = [r for r in data.images if not any(a.category == kind for a in r.annotations)]
    assert len(kept) == sum(a.attributes.get("target", False) for r in clean for a in r.annotations) < len(tc.load_samples(data))
    with pytest.raises(ValueError, match="exclude_kind 'ok' is not a defect kind"):
        tc.load_samples(data, exclude_kind="ok")
    best = tc.train_classifier(tc.ClassifierTrainConfig(train=fine, val=fine, out=root / f"loko-{kind}", epochs=1,
                                                        batch_size=8, max_steps=2, progress=False, exclude_kind=kind))
    from training.export import export_classifier
    result = export_classifier(best, fine, root / "loko" / "classifier.onnx", golden=4)
    assert result.parity_ok and result.info.extra["exclude_kind"] == kind
    assert any(f"--exclude-kind {kind}" in line for line in result.card["reproduce"]) and result.card["exclude_kind"] == kind
    assert kind not in result.info.extra["novelty"]["fitted_classes"]
    assert kind not in result.info.extra["novelty"]["val_above_limit"]
    assert result.info.class_names == ("ok",) + DEFECT_KINDS  # the class stays: the model still fits the recipe
