"""`python -m training teach`: teach the fine classifier a new defect kind from a few labelled crops
(training.few_shot), writing a candidate folder (classifier.onnx taught, detector.onnx as production's,
teach.json) that the promotion gate can score like any retraining job's candidate."""
from __future__ import annotations

import argparse
import shutil
import signal
import time
from pathlib import Path

import numpy as np

from .few_shot import FewShotError, teach
from .teach_data import review_crops, set_crops, sim_examples, summary_json

DEFAULT_SETS = (Path("out/data/fine-train"),)
SIM_FIRST_SEED = 190_000  # train split (training/splits.py), far above the standard sets' 240 parts


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teach", help="teach the classifier a new defect kind from a few labelled examples (CPU, minutes)",
                       description="Add a defect kind to the fine classifier from a few labelled crops: the parent "
                                   "network stays, one more output is fitted on its features (no torch needed). "
                                   "Examples come from the review queue (--review) or, on the virtual cell, from "
                                   "rendered fine shots (--sim N). Writes OUT/classifier.onnx, OUT/detector.onnx and "
                                   "OUT/teach.json: a candidate for the promotion gate.")
    p.add_argument("--kind", required=True, help="the new kind's name (as created in the QA workspace)")
    p.add_argument("--out", type=Path, required=True, help="candidate folder (created)")
    p.add_argument("--parent", type=Path, default=Path("models/classifier.onnx"), help="the production classifier")
    p.add_argument("--detector", type=Path, default=Path("models/detector.onnx"),
                   help="the production detector, copied into the candidate unchanged")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--review", type=Path, metavar="STORE", help="result store (SQLite) whose review labels name the kind")
    source.add_argument("--sim", type=int, metavar="N", help="N examples rendered on the virtual cell")
    p.add_argument("--sim-seed", type=int, default=SIM_FIRST_SEED, help="first part seed for --sim examples")
    p.add_argument("--sets", type=Path, nargs="*", default=None,
                   help="fine sets for the existing classes (default out/data/fine-train when present)")
    p.add_argument("--max-old-crops", type=int, default=6000, help="at most this many crops from the sets")
    p.add_argument("--max-examples", type=int, default=50, help="use at most this many examples of the kind")
    p.add_argument("--augment", type=int, default=4, help="copies of each example (flips, rotations, light)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # the QA job's cancel: stop cleanly
    from inspector.inference.model_package import parse_metadata, read_metadata_props
    from inspector.promotion.gate_split import GateSplit
    from inspector.results.sqlite_store import ResultStore
    info = parse_metadata(read_metadata_props(args.parent), str(args.parent))
    old_crops, old_labels = [], []
    if args.review is not None:
        if not Path(args.review).is_file():
            raise FileNotFoundError(f"--review {args.review}: no such result store")
        store = ResultStore(str(args.review))
        try:  # the gate side of the review set never reaches a training job (promotion.gate_split)
            crops, labels, sources = review_crops(store, info, keep_serial=GateSplit(store).is_train)
        finally:
            store.close()
        examples = crops[[i for i, label in enumerate(labels) if label == args.kind]]
        known = [i for i, label in enumerate(labels) if label in info.class_names]
        old_crops.append(crops[known])
        old_labels += [labels[i] for i in known]
        where = f"review labels of train-side parts in {args.review}"
    else:
        examples, _ = sim_examples(args.kind, args.sim, info, first_seed=args.sim_seed)
        where = f"{args.sim} virtual-cell fine shots from seed {args.sim_seed}"
    if len(examples) == 0:
        raise FewShotError(f"no labelled examples of {args.kind!r} in the {where}: label some calls or draw boxes "
                           f"on fine shots with that kind first")
    examples = examples[:args.max_examples]
    sets = args.sets if args.sets is not None else [s for s in DEFAULT_SETS if (s / "annotations.coco.json").is_file()]
    if sets:
        crops, labels = set_crops(sets, info, max_crops=args.max_old_crops)
        old_crops.append(crops)
        old_labels += labels
    old = np.concatenate(old_crops) if old_crops else np.zeros((0, *info.input_size), np.uint8)
    if len(old) == 0:
        raise FewShotError("no crops of the existing classes: give --sets (e.g. out/data/fine-train) or a review "
                           "store with labelled calls of the known classes")
    print(f"{len(examples)} examples of {args.kind} ({where}); {len(old)} crops of the existing classes "
          f"({', '.join(map(str, sets)) or 'review labels'})", flush=True)
    augmented = _augment(examples, args.augment)
    args.out.mkdir(parents=True, exist_ok=True)
    path, summary = teach(args.parent, args.out / "classifier.onnx", args.kind, augmented, old, old_labels,
                          progress=lambda msg: print(msg, flush=True))
    shutil.copyfile(args.detector, args.out / "detector.onnx")
    summary.update({"examples": int(len(examples)), "augmented_to": int(len(augmented)), "source": where,
                    "parent": str(args.parent), "sets": [str(s) for s in sets],
                    "wall_s": round(time.perf_counter() - started, 1)})
    (args.out / "teach.json").write_text(summary_json(summary) + "\n", encoding="utf-8")
    print(f"candidate: {args.out} ({summary['version']}, threshold {summary['threshold']}, {summary['wall_s']} s)")
    return 0


def _augment(crops: np.ndarray, copies: int) -> np.ndarray:
    """The examples plus `copies − 1` variants each: flips and quarter turns (a defect has no
    orientation on the part) and ±10 % light."""
    rng = np.random.default_rng(7)
    out = [crops]
    for _ in range(max(0, copies - 1)):
        turned = np.rot90(crops, k=int(rng.integers(0, 4)), axes=(1, 2))
        if rng.random() < 0.5:
            turned = turned[:, :, ::-1]
        gain = rng.uniform(0.9, 1.1, (len(crops), 1, 1))
        out.append(np.clip(turned * gain, 0, 255).astype(np.uint8))
    return np.concatenate(out)
