"""Teach the fine classifier a new defect kind from a few labelled crops, on the station's CPU.

No network is retrained and torch is not needed: the shipped ONNX classifier is read as it is, a
second session taps two of its tensors (the pooled features its last layer reads, and the novelty
features), and the new kind becomes

- one more logit beside the old ones, read from the novelty features (the pooled features of the
  last and of two early stages, and the crop's contrast: more than the last layer sees) and fitted
  by logistic regression on the cached features of the existing crops and the new examples with
  the old logits frozen, so a crop of an old kind scores what it scored before unless it looks like
  the new kind;
- one more whitened class centre of the novelty score (the tied covariance stays), so an example
  of the new kind is no longer novel;
- one more class name, threshold and grey band in the metadata, and a new version. The threshold
  is set on the existing crops labelled ok: the score that only a share `1 − keep` of them reach
  (few examples of the new kind cannot place it; plenty of ok crops can bound its false calls).

The graph is edited in place of those initialisers (ONNX surgery); everything else, the input
contract and the crop geometry included, is the parent model's, so the station cuts crops for the
taught model exactly as for its parent.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from inspector.inference.classifier import NOVELTY, preprocess
from inspector.inference.model_package import ModelInfo, parse_metadata
from inspector.kind_names import validate_kind_name

PROBABILITIES = "probabilities"
KEEP_OK = 0.997   # the new kind's threshold: ok crops scoring at or above it are at most 0.3 %
REVIEW_OK = 0.99  # its grey band starts where 1 % of ok crops score


class FewShotError(ValueError):
    pass


@dataclass(frozen=True)
class GraphTaps:
    """Names of the tensors and initialisers the surgery reads and edits."""

    logits: str            # the softmax's input (the parent's logits, frozen)
    features: str          # what the new logit reads: the novelty features, else the last layer's input
    novelty_features: str | None  # input of Sub(…, origin) feeding the whitening MatMul
    origin: str | None
    whitening: str | None  # (F, F)
    centres: str | None    # (…, classes, F) whitened class centres


def find_taps(model: onnx.ModelProto) -> GraphTaps:
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inits = {i.name for i in graph.initializer}
    softmax = producers.get(PROBABILITIES)
    if softmax is None or softmax.op_type != "Softmax":
        raise FewShotError(f"classifier graph: its {PROBABILITIES!r} output is not a Softmax; cannot add a class")
    logits = softmax.input[0]
    taps: dict[str, str | None] = dict(novelty_features=None, origin=None, whitening=None, centres=None)
    if NOVELTY in {o.name for o in graph.output}:
        # novelty = sqrt(min_c Σ ((x − origin) W − S_c)²): walk Sub(x, origin) → MatMul(W) → Unsqueeze → Sub(S)
        for node in graph.node:
            if node.op_type == "MatMul" and node.input[1] in inits and node.input[0] in producers:
                sub = producers[node.input[0]]
                if sub.op_type != "Sub" or sub.input[1] not in inits:
                    continue
                unsq = next((n for n in consumers.get(node.output[0], []) if n.op_type == "Unsqueeze"), None)
                centre_sub = next((n for n in consumers.get(unsq.output[0], []) if n.op_type == "Sub"), None) if unsq else None
                if centre_sub is not None and centre_sub.input[1] in inits:
                    taps.update(novelty_features=sub.input[0], origin=sub.input[1], whitening=node.input[1],
                                centres=centre_sub.input[1])
                    break
        if taps["centres"] is None:
            raise FewShotError("classifier graph: has a novelty output but not the whitened-centre form this tool edits")
    features = taps["novelty_features"]
    if features is None:
        gemm = producers.get(logits)
        if gemm is None or gemm.op_type != "Gemm":
            raise FewShotError("classifier graph: no novelty features and no Gemm head to read features from")
        features = gemm.input[0]
    return GraphTaps(logits=logits, features=features, **taps)  # type: ignore[arg-type]


def _initialisers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


class FeatureTap:
    """The parent classifier with its logits and the new logit's input features as extra outputs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.model = onnx.load(str(self.path))
        self.taps = find_taps(self.model)
        self.info: ModelInfo = parse_metadata({p.key: p.value for p in self.model.metadata_props}, str(self.path))
        tapped = onnx.ModelProto()
        tapped.CopyFrom(self.model)
        self._outputs = [self.taps.logits, self.taps.features]
        for name in self._outputs:
            tapped.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(tapped.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def logits_and_features(self, crops: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(the parent's logits (N, C), the new logit's input features (N, F)) of uint8 crops (N, h, w)."""
        crops = np.asarray(crops, np.uint8)
        h, w = self.info.input_size
        if crops.ndim != 3 or crops.shape[1:] != (h, w) or not len(crops):
            raise FewShotError(f"crops must be uint8 (N ≥ 1, {h}, {w}) as the classifier cuts them, got {crops.shape}")
        logits, feats = [], []
        name = self.session.get_inputs()[0].name
        for start in range(0, len(crops), batch):
            out = self.session.run(self._outputs, {name: preprocess(crops[start:start + batch], self.info)})
            logits.append(out[0])
            feats.append(out[1])
        return np.concatenate(logits), np.concatenate(feats)


@dataclass(frozen=True)
class NewClassFit:
    weight: np.ndarray  # (F,) on the raw tapped features (standardisation folded in)
    bias: float
    steps: int
    loss: float
    seconds: float

    def logit(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight + self.bias


def fit_new_class(old_logits: np.ndarray, old_labels: np.ndarray, old_features: np.ndarray, new_logits: np.ndarray,
                  new_features: np.ndarray, *, l2: float = 1e-3, steps: int = 500, lr: float = 0.05,
                  new_weight: float = 0.5, cancelled: Callable[[], bool] | None = None) -> NewClassFit:
    """One more logit `features · w + b` beside the frozen old logits: minimise the class-weighted
    cross-entropy over old crops (labels: index into the old classes) and new-kind crops (label: the
    new one). `new_weight` is the new examples' share of the total weight (they are few)."""
    if len(new_features) == 0:
        raise FewShotError("no examples of the new kind")
    if len(old_features) == 0:
        raise FewShotError("no crops of the existing classes to keep apart from the new kind")
    started = time.perf_counter()
    raw = np.concatenate([old_features, new_features]).astype(np.float64)
    mu, sd = raw[:len(old_features)].mean(axis=0), raw[:len(old_features)].std(axis=0) + 1e-6
    x = (raw - mu) / sd
    fixed = np.concatenate([old_logits, new_logits]).astype(np.float64)
    n_new, c = len(new_features), old_logits.shape[1]
    labels = np.concatenate([np.asarray(old_labels, int), np.full(n_new, c)])
    # every old class gets the same share of the old crops' weight: the new kind must stay apart from
    # each of them (a rare old kind such as a scratch matters as much as the many ok crops)
    classes, counts = np.unique(old_labels, return_counts=True)
    per_class = dict(zip(classes.tolist(), ((1 - new_weight) / len(classes) / counts).tolist()))
    sample_w = np.concatenate([[per_class[int(k)] for k in old_labels], np.full(n_new, new_weight / n_new)])
    w, b = np.zeros(x.shape[1]), float(np.median(fixed.max(axis=1))) - 4.0  # start: the new kind unlikely
    m, v = np.zeros(len(w) + 1), np.zeros(len(w) + 1)
    loss = float("nan")
    for step in range(1, steps + 1):
        if cancelled is not None and step % 50 == 0 and cancelled():
            raise FewShotCancelled("teaching cancelled")
        z = np.concatenate([fixed, (x @ w + b)[:, None]], axis=1)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = float(-(sample_w * np.log(p[np.arange(len(x)), labels] + 1e-12)).sum() + l2 * (w @ w))
        g_z = sample_w * (p[:, c] - (labels == c))  # d loss / d new logit
        grad = np.concatenate([g_z @ x + 2 * l2 * w, [g_z.sum()]])
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        update = lr * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
        w -= update[:-1]
        b -= float(update[-1])
    weight = w / sd  # on raw features: (raw − mu)/sd · w + b = raw · (w/sd) + (b − mu/sd · w)
    return NewClassFit(weight.astype(np.float32), float(b - (mu / sd) @ w), steps, loss, time.perf_counter() - started)


class FewShotCancelled(RuntimeError):
    pass


def new_class_probability(old_logits: np.ndarray, fit: NewClassFit, features: np.ndarray) -> np.ndarray:
    z = np.concatenate([old_logits, fit.logit(features)[:, None]], axis=1)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p[:, -1] / p.sum(axis=1)


def extend_classifier(parent: FeatureTap, out: str | Path, kind: str, fit: NewClassFit,
                      new_novelty_features: np.ndarray | None, *, threshold: float, grey_band: tuple[float, float],
                      version: str, note: dict) -> Path:
    """Write the parent classifier with the new kind added: graph (a MatMul + Add for the new logit,
    concatenated before the softmax; one more novelty centre) and metadata."""
    names = tuple(parent.info.class_names)
    if kind in names:
        raise FewShotError(f"the classifier already knows {kind!r}")
    if not 0 < grey_band[0] <= grey_band[1] <= threshold < 1:
        raise FewShotError(f"new kind {kind!r}: need 0 < grey band low ≤ high ≤ threshold < 1, got {grey_band}, {threshold}")
    model = onnx.ModelProto()
    model.CopyFrom(parent.model)
    graph, taps = model.graph, parent.taps
    source = taps.features
    softmax = next(n for n in graph.node if n.op_type == "Softmax" and PROBABILITIES in n.output)
    old_logits = softmax.input[0]
    prefix = f"taught_{kind}"
    graph.initializer.extend([numpy_helper.from_array(fit.weight.reshape(-1, 1).astype(np.float32), f"{prefix}_w"),
                              numpy_helper.from_array(np.array([fit.bias], np.float32), f"{prefix}_b")])
    added = [helper.make_node("MatMul", [source, f"{prefix}_w"], [f"{prefix}_mm"], name=f"{prefix}_matmul"),
             helper.make_node("Add", [f"{prefix}_mm", f"{prefix}_b"], [f"{prefix}_logit"], name=f"{prefix}_add"),
             helper.make_node("Concat", [old_logits, f"{prefix}_logit"], [f"{prefix}_logits"], axis=1,
                              name=f"{prefix}_concat")]
    index = list(graph.node).index(softmax)
    for offset, node in enumerate(added):
        graph.node.insert(index + offset, node)
    softmax.input[0] = f"{prefix}_logits"
    if taps.centres is not None:
        if new_novelty_features is None or len(new_novelty_features) == 0:
            raise FewShotError("the classifier has a novelty score: the new kind's novelty features are needed")
        inits = _initialisers(model)
        whitened = (new_novelty_features - inits[taps.origin]) @ inits[taps.whitening]
        centres = inits[taps.centres]  # (…, classes with training crops, F): one more along the class axis
        centre = whitened.mean(axis=0).reshape((1,) * (centres.ndim - 1) + (-1,))
        extended = np.concatenate([centres, centre], axis=-2).astype(np.float32)
        for i, init in enumerate(graph.initializer):
            if init.name == taps.centres:
                graph.initializer[i].CopyFrom(numpy_helper.from_array(extended, init.name))
    meta = {p.key: p.value for p in model.metadata_props}
    meta["class_names"] = json.dumps([*names, kind])
    meta["thresholds"] = json.dumps({**json.loads(meta.get("thresholds", "{}")), kind: round(threshold, 4)})
    meta["grey_band"] = json.dumps({**json.loads(meta.get("grey_band", "{}")), kind: [round(v, 4) for v in grey_band]})
    meta["version"] = version
    meta["taught"] = json.dumps({"parent": f"{parent.path.name}@{parent.info.version}", "kind": kind, **note})
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def bump_minor(version: str) -> str:
    parts = version.split(".")
    try:
        return f"{parts[0]}.{int(parts[1]) + 1}.0"
    except (IndexError, ValueError):
        return f"{version}+taught"


def threshold_on_ok(ok_probability: np.ndarray, keep: float = KEEP_OK) -> tuple[float, tuple[float, float]]:
    """Accept threshold: the score only a share 1 − keep of the ok crops reach (kept within 0.05–0.95);
    grey band from the score 1 − keep_review of them reach up to the threshold."""
    if len(ok_probability) < 100:
        raise FewShotError(f"threshold: {len(ok_probability)} ok crops are too few to bound false calls (need ≥ 100)")
    threshold = float(np.clip(np.quantile(ok_probability, keep), 0.05, 0.95))
    low = float(np.clip(np.quantile(ok_probability, REVIEW_OK), 0.01, threshold))
    return threshold, (low, threshold)


def teach(parent_path: str | Path, out: str | Path, kind: str, new_crops: np.ndarray, old_crops: np.ndarray,
          old_labels: Sequence[str], *, progress: Callable[[str], None] | None = None,
          cancelled: Callable[[], bool] | None = None) -> tuple[Path, dict]:
    """The whole few-shot step: features → fit → threshold → extended model. `old_labels` are class
    names of the parent (e.g. "ok", "scratch"); returns the new model's path and a summary."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    validate_kind_name(kind, "new defect kind")
    parent = FeatureTap(parent_path)
    names = list(parent.info.class_names)
    if kind in names:
        raise FewShotError(f"{parent.path.name} already knows {kind!r}")
    unknown = sorted({label for label in old_labels if label not in names})
    if unknown:
        raise FewShotError(f"old crops labelled {unknown}: not classes of {parent.path.name} ({', '.join(names)})")
    say(f"features of {len(old_crops)} existing crops and {len(new_crops)} {kind} examples")
    old_logits, old_tap = parent.logits_and_features(old_crops)
    new_logits, new_tap = parent.logits_and_features(new_crops)
    if cancelled is not None and cancelled():
        raise FewShotCancelled("teaching cancelled")
    labels = np.array([names.index(label) for label in old_labels])
    say(f"fitting the {kind} logit")
    fit = fit_new_class(old_logits, labels, old_tap, new_logits, new_tap, cancelled=cancelled)
    ok_probability = new_class_probability(old_logits, fit, old_tap)[labels == names.index("ok")]
    threshold, band = threshold_on_ok(ok_probability)
    recall = float((new_class_probability(new_logits, fit, new_tap) >= threshold).mean())
    version = bump_minor(parent.info.version)
    note = {"examples": int(len(new_crops)), "old_crops": int(len(old_crops)), "fit_loss": round(fit.loss, 5),
            "threshold_rule": f"score reached by {100 * (1 - KEEP_OK):.1f} % of the {len(ok_probability)} ok crops",
            "examples_called": round(recall, 4)}
    novelty = new_tap if parent.taps.novelty_features else None
    path = extend_classifier(parent, out, kind, fit, novelty, threshold=threshold, grey_band=band,
                             version=version, note=note)
    summary = {**note, "kind": kind, "version": version, "path": str(path), "threshold": round(threshold, 4),
               "grey_band": [round(v, 4) for v in band], "seconds": round(time.perf_counter() - started, 2)}
    say(f"wrote {path} ({version}) in {summary['seconds']} s")
    return path, summary
