"""A peer for the coarse detector: an Ultralytics YOLOv8 nano trained from scratch on the project's own
YOLO export, then compared with the station's detector on a labelled coarse set.

Ultralytics is not a station dependency. `train` runs in a separate venv that has it (plus onnx for
the export); `compare` runs in the project venv with onnxruntime only, and runs the station's
detector through the station's own `Detector`. Nothing here imports ultralytics or torch at module
level, so the project venv can import this file.

    /work/peer-venv/bin/python training/peers/yolo_peer.py train --data out/data/coarse-yolo.yaml --out out/peer/yolo
    .venv/bin/python -m training.peers.yolo_peer compare --peer out/peer/yolo/yolo-peer.onnx --set out/data/coarse-val \
        --out out/peer/compare
    .venv/bin/python -m training.peers.yolo_peer commands          # the whole sequence, end to end
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

DEFECT_CLASSES = ("scratch", "dent", "burr", "stain")  # = training.data.records.DEFECT_CLASSES (checked in compare)
PEER_ONNX = "yolo-peer.onnx"
COMMANDS = """\
# 1. data (project venv): the standard sets and the data.yaml (absolute path, separate val set, defect kinds only)
.venv/bin/python -m training data standard            # writes out/data/coarse-yolo.yaml among others
#    or only the coarse sets:
.venv/bin/python -m training data coarse --split train --parts 240 --out out/data/coarse-train
.venv/bin/python -m training data coarse --split val --parts 80 --out out/data/coarse-val
.venv/bin/python -m training data yolo --train out/data/coarse-train --val out/data/coarse-val --out out/data/coarse-yolo.yaml
# 2. train + export the peer (peer venv: ultralytics, torch CPU, onnx; offline)
nice -n 10 /work/peer-venv/bin/python training/peers/yolo_peer.py train --data out/data/coarse-yolo.yaml \\
    --imgsz 1024 --epochs 100 --time-hours 6 --batch 8 --out out/peer/yolo
# 3. compare on a held-out coarse set (project venv, onnxruntime only)
.venv/bin/python -m training data coarse --split heldout --parts 40 --out out/data/coarse-heldout
.venv/bin/python -m training.peers.yolo_peer compare --detector models/detector.onnx \\
    --peer out/peer/yolo/yolo-peer.onnx --set out/data/coarse-heldout --out out/peer/compare
"""


class PeerError(ValueError):
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _imgsz(text: str) -> int:
    value = _positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"{text!r} must be a multiple of 32 (the YOLOv8 stride)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yolo_peer", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    t = sub.add_parser("train", help="train YOLOv8n from scratch (offline) and export ONNX (peer venv)")
    t.add_argument("--data", type=Path, required=True, help="data.yaml from `python -m training data yolo|standard`")
    t.add_argument("--imgsz", type=_imgsz, default=1024, help="square training/export size (default 1024: the full "
                   "1024×768 coarse frame, no downscaling of 2–5 px defects)")
    t.add_argument("--epochs", type=_positive_int, default=100)
    t.add_argument("--time-hours", type=_positive_float, help="wall-clock limit in hours (Ultralytics `time`; overrides --epochs)")
    t.add_argument("--batch", type=_positive_int, default=8)
    t.add_argument("--workers", type=int, default=0, help="dataloader workers (default 0)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, required=True, help="output folder (runs, weights, yolo-peer.onnx + .json)")
    t.set_defaults(handler=cmd_train)
    c = sub.add_parser("compare", help="peer vs the station's detector on a labelled coarse set (project venv)")
    c.add_argument("--detector", type=Path, default=Path("models/detector.onnx"), help="the station's detector")
    c.add_argument("--peer", type=Path, required=True, help="the peer's ONNX export (yolo-peer.onnx)")
    c.add_argument("--set", type=Path, required=True, dest="set_dir",
                   help="labelled coarse set folder (images/*.png + annotations.coco.json)")
    c.add_argument("--out", type=Path, required=True, help="where compare.json and compare.md go")
    c.add_argument("--threads", type=_positive_int, default=2, help="intra-op threads per session (default 2)")
    c.add_argument("--warmup", type=int, default=5)
    c.add_argument("--runs", type=_positive_int, default=50)
    c.add_argument("--floor", type=_positive_float, default=0.01, help="lowest peer confidence swept (default 0.01)")
    c.set_defaults(handler=cmd_compare)
    s = sub.add_parser("commands", help="print the commands end to end")
    s.set_defaults(handler=lambda args: print(COMMANDS, end="") or 0)
    return parser


# ---------------------------------------------------------------- train (peer venv)

def _read_data_yaml(path: Path) -> dict:
    if not path.is_file():
        raise PeerError(f"--data {path}: no such file (write it with `python -m training data yolo`)")
    import yaml  # an Ultralytics dependency: present in the peer venv

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"path", "train", "val", "names"} <= data.keys():
        raise PeerError(f"--data {path}: not a data.yaml with path/train/val/names")
    if not Path(str(data["path"])).is_absolute():
        raise PeerError(f"--data {path}: 'path' {data['path']!r} is not absolute (Ultralytics would resolve it elsewhere)")
    return data


def _count_images(data: dict) -> dict[str, int]:
    base = Path(str(data["path"]))
    counts = {}
    for split in ("train", "val"):
        dirs = data[split] if isinstance(data[split], list) else [data[split]]
        counts[split] = sum(len(list((base / d).glob("*.png"))) for d in dirs)
    return counts


def _offline_environment(out: Path) -> None:
    """Before ultralytics is imported: no network checks, no auto-installs, settings kept in `out`."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ["YOLO_CONFIG_DIR"] = str((out / "ultralytics-config").resolve())
    os.environ.setdefault("MPLBACKEND", "Agg")


def cmd_train(args: argparse.Namespace) -> int:
    data = _read_data_yaml(args.data)
    names = data["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    if tuple(names) != DEFECT_CLASSES:
        raise PeerError(f"--data {args.data}: classes {names} are not the detector's {list(DEFECT_CLASSES)}")
    images = _count_images(data)
    if not images["train"] or not images["val"]:
        raise PeerError(f"--data {args.data}: no PNG images under train or val ({images})")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    _offline_environment(out)
    from ultralytics import YOLO, settings  # the peer venv only

    settings.update({k: v for k, v in {"sync": False, "hub": False, "tensorboard": False, "wandb": False, "mlflow": False,
                                       "clearml": False, "comet": False, "dvc": False, "neptune": False,
                                       "raytune": False, "weights_dir": str(out / "weights-cache"),
                                       "runs_dir": str(out / "runs")}.items() if k in settings})
    train_args = dict(data=str(args.data.resolve()), imgsz=args.imgsz, epochs=args.epochs, batch=args.batch,
                      workers=args.workers, device=args.device, project=str(out), name="train", exist_ok=True,
                      pretrained=False, amp=False, plots=False, seed=args.seed, deterministic=True, verbose=True)
    if args.time_hours:
        train_args["time"] = args.time_hours
    started = time.time()
    model = YOLO("yolov8n.yaml")  # architecture only: random weights, nothing downloaded
    model.train(**train_args)
    train_s = time.time() - started
    trainer = model.trainer
    best = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    started = time.time()
    simplify = _has("onnxslim")
    exported = YOLO(str(best)).export(format="onnx", opset=17, imgsz=args.imgsz, dynamic=False, simplify=simplify,
                                      nms=False, device=args.device)
    export_s = time.time() - started
    onnx_path = out / PEER_ONNX
    shutil.copyfile(exported, onnx_path)
    record = {"command": shlex.join([_short(sys.executable), _short(sys.argv[0]), *args.argv]), "train_args": train_args,
              "epochs_done": int(trainer.epoch) + 1, "epochs_asked": args.epochs, "time_hours": args.time_hours,
              "wall_s": {"train": round(train_s, 1), "export": round(export_s, 1)}, "imgsz": args.imgsz,
              "images": images, "classes": list(DEFECT_CLASSES), "weights": str(best), "onnx": str(onnx_path),
              "export": {"opset": 17, "dynamic": False, "simplify": simplify, "nms": False},
              "best_fitness": None if trainer.best_fitness is None else float(trainer.best_fitness),
              "ultralytics": __import__("ultralytics").__version__, "torch": __import__("torch").__version__}
    onnx_path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"peer: {onnx_path} ({record['epochs_done']} epochs, {train_s:.0f} s training, {export_s:.0f} s export)")
    return 0


def _short(path: str) -> str:
    """A path relative to the current folder when it lies inside it (commands read as typed)."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return path


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def cmd_compare(args: argparse.Namespace) -> int:
    from training.peers.compare import run_compare  # project venv: onnxruntime + the station's code

    return run_compare(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.handler(args) or 0)
    except (ValueError, OSError) as exc:  # PeerError, ModelContractError, a peer onnxruntime refuses, files
        print(f"yolo_peer {args.command}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
