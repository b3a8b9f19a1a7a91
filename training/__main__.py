"""`python -m training` — data, training and export of the inspection models.

The station forwards `inspector data|train|export …` here. The held-out evaluation is the station's
own `inspector eval` (it inspects with the station's cycle; training holds no decision code). Every
command is deterministic given its arguments (part seeds come from fixed ranges per split, training seeds are options),
and every output folder says what made it (manifest.json, history.json, model cards).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from . import teach_command
from .data.yolo import write_data_yaml

DATA_ROOT = Path("out/data")
TRAIN_ROOT = Path("out/train")
MODELS = Path("models")

EPILOG_DATA = """examples:
  python -m training data standard --false-candidates-from models/detector.onnx   # the sets the shipped models use
  python -m training data coarse --split train --parts 240 --out out/data/coarse-train
  python -m training data fine --split val --parts 80 --out out/data/fine-val
  python -m training data import-coco relabelled.json --images DIR --out out/data/coarse-relabelled
"""

EPILOG_TRAIN = """examples:
  python -m training train detector                     # standard sets, writes out/train/detector/
  python -m training train detector --iterations 3000 --resume
  python -m training train classifier --epochs 12
  python -m training train classifier --exclude-kind dent --out out/train/loko-dent   # leave one kind out
Interrupt with Ctrl-C at any time; --resume continues from the last checkpoint (same result
as an uninterrupted run up to the order of random draws after the checkpoint)."""

EPILOG_EXPORT = """examples:
  python -m training export detector                    # out/train/detector/best.pt → models/detector.onnx
  python -m training export classifier --target-escape 0.01
Thresholds are chosen on the validation set for the target escape rate; the parity check
(ONNX vs torch on a golden set) runs every time and its figures go into the model card."""

def _optional_path(text: str) -> Path | None:
    """A path, or None for '' (Path('') would be the current folder)."""
    return Path(text) if text.strip() else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    # ---- data
    data = sub.add_parser("data", help="render labelled data sets from the virtual cell (COCO + YOLO)",
                          description="Render labelled sets from the virtual cell. Part seeds come from fixed, "
                                      "disjoint ranges per split (train / val / heldout), so sets never share a part.",
                          epilog=EPILOG_DATA, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = data.add_subparsers(title="data commands", metavar="KIND")
    for kind, text in (("coarse", "coarse frames of all 5 faces with defect + nuisance boxes (detector)"),
                       ("fine", "fine-camera patches around defects, nuisances and clean spots (classifier)")):
        p = dsub.add_parser(kind, help=text, description=text)
        p.add_argument("--split", required=True, choices=("train", "val", "heldout", "smoke"),
                       help="which seed range the parts come from")
        p.add_argument("--parts", type=int, required=True, help="number of parts (consecutive seeds)")
        p.add_argument("--offset", type=int, default=0, help="skip this many seeds of the split first (default 0)")
        p.add_argument("--mix", choices=("training", "lot"), default="training",
                       help="'training': ~95%% defective parts, up to 6 defects; 'lot': production-like, half defective")
        if kind == "fine":
            p.add_argument("--clean-spots", type=int, default=4, help="clean spots per part (default 4)")
            p.add_argument("--false-candidates-from", type=Path, metavar="DETECTOR_ONNX",
                           help="also shoot up to --max-false-candidates of this detector's false candidates per "
                                "part (hard 'ok' examples, as the station meets them)")
            p.add_argument("--max-false-candidates", type=int, default=8)
        p.add_argument("--out", type=Path, required=True, help="output folder (created)")
        p.set_defaults(handler=_data, kind=kind)
    std = dsub.add_parser("standard", help="the standard sets the shipped models are trained on",
                          description="coarse-train, fine-train (240 train parts), coarse-val, fine-val (80 val parts).")
    std.add_argument("--root", type=Path, default=DATA_ROOT, help=f"where the sets go (default {DATA_ROOT})")
    std.add_argument("--train-parts", type=int, default=240)
    std.add_argument("--val-parts", type=int, default=80)
    std.add_argument("--false-candidates-from", type=Path, metavar="DETECTOR_ONNX",
                     help="fine sets also get this detector's false candidates (the shipped models use models/detector.onnx)")
    std.add_argument("--max-false-candidates", type=int, default=8)
    std.set_defaults(handler=_data_standard)
    imp = dsub.add_parser("import-coco", help="import a COCO file (e.g. from the review/relabel loop) as a set",
                          description="Validate a COCO detection file against the known categories, copy its images "
                                      "into a new set folder and write YOLO labels, a manifest and a fingerprint.")
    imp.add_argument("coco", type=Path)
    imp.add_argument("--images", type=Path, help="folder the COCO file_name entries are relative to (default: its folder)")
    imp.add_argument("--kind", choices=("coarse", "fine"), default="coarse")
    imp.add_argument("--out", type=Path, required=True)
    imp.set_defaults(handler=_data_import)
    yolo = dsub.add_parser("yolo", help="write an Ultralytics data.yaml for training set(s) and a separate validation set",
                           description="Write a data.yaml naming the YOLO labels of coarse training set(s) and a "
                                       "validation set (not one of the training sets), with an absolute path so it "
                                       "loads from any directory. Classes: the defect kinds; nuisances are background.")
    yolo.add_argument("--train", type=Path, nargs="+", default=[DATA_ROOT / "coarse-train"])
    yolo.add_argument("--val", type=Path, default=DATA_ROOT / "coarse-val")
    yolo.add_argument("--out", type=Path, default=DATA_ROOT / "coarse-yolo.yaml")
    yolo.set_defaults(handler=_data_yolo)

    teach_command.add_parser(sub)

    # ---- train
    train = sub.add_parser("train", help="train the detector or the classifier (CPU, checkpoints, resume)",
                           description="Train a model from scratch on generated sets.", epilog=EPILOG_TRAIN,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = train.add_subparsers(title="models", metavar="MODEL")
    det = tsub.add_parser("detector", help="the coarse CenterNet-style detector",
                          description="Train the coarse detector on biased random crops; validate on full val frames.")
    det.add_argument("--train", type=Path, nargs="+", default=[DATA_ROOT / "coarse-train"],
                     help="coarse training set(s), trained on together (e.g. the standard set + an imported review set)")
    det.add_argument("--val", type=_optional_path, default=DATA_ROOT / "coarse-val",
                     help="coarse validation set ('' for none)")
    det.add_argument("--out", type=Path, default=TRAIN_ROOT / "detector", help="checkpoints + history")
    det.add_argument("--iterations", type=int, default=3500)
    det.add_argument("--batch-size", type=int, default=16)
    det.add_argument("--crop", type=int, default=256, help="training crop side in px (multiple of 32)")
    det.add_argument("--lr", type=float, default=3e-3)
    det.add_argument("--width", type=int, default=32, help="channel width of the network")
    det.add_argument("--seed", type=int, default=1)
    det.add_argument("--threads", type=int, default=2)
    det.add_argument("--val-every", type=int, default=500)
    det.add_argument("--val-images", type=int, default=150)
    det.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    det.add_argument("--no-progress", action="store_true")
    det.set_defaults(handler=_train_detector)
    cls = tsub.add_parser("classifier", help="the fine ROI classifier",
                          description="Train the fine classifier on ROI crops cut exactly as the station cuts them.")
    cls.add_argument("--train", type=Path, nargs="+", default=[DATA_ROOT / "fine-train"],
                     help="fine training set(s), trained on together (e.g. the standard set + an imported review set)")
    cls.add_argument("--val", type=_optional_path, default=DATA_ROOT / "fine-val",
                     help="fine validation set ('' for none)")
    cls.add_argument("--out", type=Path, default=TRAIN_ROOT / "classifier")
    cls.add_argument("--epochs", type=int, default=40)
    cls.add_argument("--batch-size", type=int, default=64)
    cls.add_argument("--lr", type=float, default=3e-3)
    cls.add_argument("--width", type=int, default=32)
    cls.add_argument("--seed", type=int, default=1)
    cls.add_argument("--threads", type=int, default=2)
    cls.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke runs)")
    cls.add_argument("--exclude-kind", choices=("scratch", "dent", "burr", "stain"), default=None,
                     help="leave-one-kind-out: drop every patch showing this defect kind from train and val "
                          "(the class stays in the output, never trained); e.g. --out out/train/loko-dent")
    cls.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    cls.add_argument("--no-progress", action="store_true")
    cls.set_defaults(handler=_train_classifier)

    # ---- export
    export = sub.add_parser("export", help="checkpoint → self-describing ONNX model + model card (with parity check)",
                            description="Export a checkpoint to ONNX with the model contract in metadata_props, choose "
                                        "per-class thresholds on the validation set, check ONNX-vs-torch parity on a "
                                        "golden set, and write the model card beside the model.",
                            epilog=EPILOG_EXPORT, formatter_class=argparse.RawDescriptionHelpFormatter)
    esub = export.add_subparsers(title="models", metavar="MODEL")
    for name, default_val in (("detector", "coarse-val"), ("classifier", "fine-val")):
        e = esub.add_parser(name, help=f"export the {name}")
        e.add_argument("--checkpoint", type=Path, default=TRAIN_ROOT / name / "best.pt")
        e.add_argument("--val", type=Path, default=DATA_ROOT / default_val, help="set for thresholds and the golden set")
        e.add_argument("--out", type=Path, default=MODELS / f"{name}.onnx")
        e.add_argument("--version", default="1.0.0")
        e.add_argument("--target-escape", type=float, default=0.01 if name == "classifier" else 0.02,
                       help="per-class miss rate the thresholds are chosen for on the validation set")
        if name == "detector":
            e.add_argument("--candidate-budget", type=float, default=0.5,
                           help="at most this many false candidates per coarse frame and class (default 0.5)")
        e.add_argument("--golden", type=int, default=8 if name == "detector" else 128, help="golden set size")
        e.add_argument("--command", default="", help=argparse.SUPPRESS)
        e.set_defaults(handler=_export, model=name)

    return parser


def _progress(label: str):
    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 20) == 0:
            print(f"  {label}: {done}/{total} parts", file=sys.stderr, flush=True)
    return report


def _data(args: argparse.Namespace) -> int:
    from .data.generate import LOT_MIX, TRAINING_MIX, generate_coarse, generate_fine
    mix = TRAINING_MIX if args.mix == "training" else LOT_MIX
    if args.kind == "coarse":
        data = generate_coarse(args.out, args.split, args.parts, offset=args.offset, mix=mix, progress=_progress(str(args.out)))
    else:
        data = generate_fine(args.out, args.split, args.parts, offset=args.offset, mix=mix, clean_spots=args.clean_spots,
                             detector=_open_detector(args.false_candidates_from),
                             max_false_candidates=args.max_false_candidates, progress=_progress(str(args.out)))
    _print_set(data)
    return 0


def _print_set(data) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in data.annotation_count().items())
    print(f"{data.root}: {len(data.images)} images; {counts}; fingerprint {data.info['fingerprint']}")


def _data_standard(args: argparse.Namespace) -> int:
    from .data.generate import TRAINING_MIX, generate_coarse, generate_fine
    root = args.root
    fine = {"detector": _open_detector(args.false_candidates_from), "max_false_candidates": args.max_false_candidates}
    for name, fn, split, parts, options in (("coarse-train", generate_coarse, "train", args.train_parts, {}),
                                            ("fine-train", generate_fine, "train", args.train_parts, fine),
                                            ("coarse-val", generate_coarse, "val", args.val_parts, {}),
                                            ("fine-val", generate_fine, "val", args.val_parts, fine)):
        _print_set(fn(root / name, split, parts, mix=TRAINING_MIX, progress=_progress(name), **options))
    print(f"YOLO data.yaml: {write_data_yaml(root / 'coarse-yolo.yaml', [root / 'coarse-train'], root / 'coarse-val')}")
    return 0


def _data_yolo(args: argparse.Namespace) -> int:
    print(write_data_yaml(args.out, args.train, args.val))
    return 0


def _open_detector(path: Path | None):
    if path is None:
        return None
    from inspector.inference.detector import Detector
    return Detector.open(str(path), prefer=["CPU"])


def _data_import(args: argparse.Namespace) -> int:
    from .data.importer import import_coco
    _print_set(import_coco(args.coco, args.out, images=args.images, kind=args.kind))
    return 0


def _train_detector(args: argparse.Namespace) -> int:
    from .train_detector import DetectorTrainConfig, train_detector
    cfg = DetectorTrainConfig(train=tuple(args.train), val=args.val, out=args.out,
                              iterations=args.iterations, batch_size=args.batch_size, crop=args.crop, lr=args.lr,
                              width=args.width, seed=args.seed, threads=args.threads, val_every=args.val_every,
                              val_images=args.val_images, resume=args.resume, progress=not args.no_progress)
    print(f"best checkpoint: {train_detector(cfg)}")
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    from .train_classifier import ClassifierTrainConfig, train_classifier
    cfg = ClassifierTrainConfig(train=tuple(args.train), val=args.val, out=args.out,
                                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, width=args.width,
                                seed=args.seed, threads=args.threads, max_steps=args.max_steps, resume=args.resume,
                                progress=not args.no_progress, exclude_kind=args.exclude_kind)
    print(f"best checkpoint: {train_classifier(cfg)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_classifier, export_detector
    command = args.command or "python -m training " + " ".join(sys.argv[1:])
    fn = export_detector if args.model == "detector" else export_classifier
    options = {"candidate_budget": args.candidate_budget} if args.model == "detector" else {}
    result = fn(args.checkpoint, args.val, args.out, version=args.version, target_escape=args.target_escape,
                golden=args.golden, command=command, **options)
    print(result.summary())
    return 0 if result.parity_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("interrupted (use --resume to continue training from the last checkpoint)", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as exc:
        print(f"python -m training: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
