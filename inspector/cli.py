"""`inspector` — the station's command line. Each subcommand imports only what it needs."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

DEFAULT_DB = os.path.join("out", "results.db")


FORWARDED = {"train": "training", "export": "training", "data": "training", "station": "ui"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FORWARDED:
        # Training needs torch and the station needs Qt; the core imports neither: own processes.
        return subprocess.call([sys.executable, "-m", FORWARDED[argv[0]], *argv])
    debug = "--debug" in argv or os.environ.get("INSPECTOR_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    args.argv = argv  # the command line as given, for reports that say how they were made
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - sorted into expected (one line) and bugs (traceback) below
        code = expected_error(exc)
        if code is None or debug:
            raise
        command = next((a for a in argv if not a.startswith("-")), "")
        print(f"inspector {command}: {one_line(exc)}".replace("inspector : ", "inspector: "), file=sys.stderr)
        return code


def expected_error(exc: BaseException) -> int | None:
    """The exit status for an error that bad input or the environment causes (a file, a recipe, a
    device, a database), said in one line; None for anything else (a bug: its traceback is shown)."""
    import sqlite3

    from hardware.errors import HardwareError

    if isinstance(exc, ValueError):  # ConfigError, ModelContractError, bad values in a file
        return 2
    kinds: list[type] = [OSError, HardwareError, sqlite3.Error]
    for module, name in (("psycopg", "Error"), ("cv2", "error")):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(getattr(loaded, name, None), type):
            kinds.append(getattr(loaded, name))
    return 1 if isinstance(exc, tuple(kinds)) else None


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (OSError as 'file: reason'; native text collapsed)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."


def build_parser() -> argparse.ArgumentParser:
    from .run_command import positive_float

    parser = argparse.ArgumentParser(prog="inspector", description="Visual inspection cell: station, virtual cell, results, models.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one-line message (anywhere on the line)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    sim = sub.add_parser("sim", help="start the virtual cell (controller emulators on pseudo-terminals)",
                         description="Start the virtual cell and print its port paths; runs until Ctrl-C. "
                                     "'inspector sim gallery OUTDIR' writes rendered PNGs instead.")
    sim.add_argument("--seed", type=int, default=1, help="seed of the first part in the fixture (default 1)")
    sim.add_argument("--speed-factor", type=positive_float, default=1.0, help="machine time runs this many times faster than wall time")
    sim.add_argument("--lights", choices=("gardasoft", "template"), default="gardasoft",
                     help="light controller protocol to emulate (default gardasoft)")
    sim.add_argument("--station-out", metavar="FILE", help="also write a station config (TOML) pointing at the emulators' ports")
    sim.set_defaults(handler=_sim)
    sim_sub = sim.add_subparsers(title="sim commands", metavar="SIMCOMMAND")
    gallery = sim_sub.add_parser("gallery", help="write PNGs of one part under each light and camera",
                                 description="Render one part with one defect of each kind (and the same part without "
                                             "defects) under each light channel and camera, with ground-truth overlays.")
    gallery.add_argument("outdir")
    gallery.add_argument("--seed", type=int, default=7, dest="gallery_seed")
    gallery.set_defaults(handler=_sim_gallery)

    from .run_command import add_parser as add_run_parser  # light: argparse only until it runs

    add_run_parser(sub, DEFAULT_DB)

    inspect = sub.add_parser("inspect", help="run the two-stage logic on stored images (audit, model check)",
                             description="Replay the two-stage inspection offline. Each argument is either an archived "
                                         "part folder (coarse_<view>.png + fine_NN_<face>.png, as the station archives "
                                         "them) or one high-resolution image of a face at the fine camera's scale "
                                         "(then --face names the face).")
    inspect.add_argument("images", nargs="+", help="archived part folders or face images")
    inspect.add_argument("--recipe", default=None, help="recipe file (default: the reference recipe in models/)")
    calibration = inspect.add_mutually_exclusive_group()
    calibration.add_argument("--station", default=None, metavar="STATION.toml",
                             help="station config whose camera calibration maps pixels to mm (required unless --sim)")
    calibration.add_argument("--sim", action="store_true",
                             help="use the virtual cell's calibration (images rendered by `inspector sim`)")
    inspect.add_argument("--face", default="top", help="face shown by single images (default top)")
    inspect.add_argument("--json", action="store_true", help="one JSON object per input")
    inspect.set_defaults(handler=_inspect)

    from .results_command import add_models_parser, add_results_parser  # inspector results, models rollback

    add_results_parser(sub, DEFAULT_DB)

    ev = sub.add_parser(
        "eval", help="inspect a held-out lot with the station's own cycle; escape and line overkill with counts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Inspect held-out parts on the virtual cell with the station's own cycle (the recipe's thresholds, "
                    "planner, fine shots and verdict rules: what `inspector run --sim` does, faster than real time) "
                    "and score each verdict against the recipe's rules applied to the part's true defects. Writes "
                    "report.json (summary with counts and 95 %% intervals, one row per part) and report.md.",
        epilog="examples:\n"
               "  inspector eval --parts 6                        # a quick look: out/eval/report.md\n"
               "  inspector eval --parts 500 --publish            # docs/eval + README, BENCHMARKS.md, model cards\n"
               "  inspector eval --recipe candidate.recipe.json --out out/eval-candidate   # a candidate recipe\n"
               "  inspector eval --publish-from docs/eval/report.json   # regenerate the documents only")
    ev.add_argument("--recipe", default=None, help="recipe file (default: the reference recipe in models/)")
    ev.add_argument("--parts", type=int, default=300, help="parts in the lot (default 300)")
    ev.add_argument("--seed", type=int, default=300_000,
                    help="seed of the first part (default 300000: the held-out split, never trained or tuned on)")
    ev.add_argument("--speed-factor", type=float, default=50.0,
                    help="machine time runs this many times faster than wall time (default 50; verdicts do not depend on it)")
    ev.add_argument("--workers", type=int, default=2, help="worker processes, each with its own virtual cell (default 2)")
    ev.add_argument("--out", default=os.path.join("out", "eval"), help="report folder (default out/eval)")
    ev.add_argument("--publish", action="store_true",
                    help="also write docs/eval/report.{json,md} and regenerate the figures in README.md, BENCHMARKS.md "
                         "and the model cards")
    ev.add_argument("--publish-from", metavar="JSON", help="measure nothing: publish an existing report.json")
    ev.add_argument("--baseline", metavar="JSON",
                    help="with --publish/--publish-from: a report.json of the same lot from before a change; BENCHMARKS.md "
                         "gets the two side by side")
    ev.add_argument("--faults", action="store_true",
                    help="instead of the held-out lot: the fault matrix (every virtual-cell fault, --fault-parts parts each)")
    ev.add_argument("--fault-parts", type=int, default=10, help="parts per fault (default 10, half defective)")
    ev.add_argument("--unknown-kinds", metavar="DIR",
                    help="instead of the held-out lot: per defect kind, DIR/<kind>/classifier.onnx (trained without "
                         "that kind) inspects a lot whose only defects are of that kind")
    ev.add_argument("--unknown-parts", type=int, default=50, help="parts per kind (default 50)")
    ev.add_argument("--teach-kind", metavar="KIND",
                    help="instead of the held-out lot: the learning curve of teaching KIND (a kind the renderer draws "
                         "only on request, e.g. crack) with --teach-examples labelled examples each")
    ev.add_argument("--teach-examples", type=int, nargs="+", default=[10, 25, 50], help="example counts (default 10 25 50)")
    ev.add_argument("--teach-parts", type=int, default=50, help="parts in the new-kind lot (default 50)")
    ev.add_argument("--teach-old-parts", type=int, default=200, help="production-mix parts for the old kinds (default 200)")
    ev.set_defaults(handler=_eval)

    bench = sub.add_parser(
        "bench", help="measure cycle time, inference latency, soak and held-out quality; write BENCHMARKS.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure the station on the virtual cell and write BENCHMARKS.md (the machine, the commit, the "
                    "command, every figure with its denominator) and PNG plots in docs/bench/. A benchmark, not a "
                    "test: nothing is asserted. Parts: cycle time per part split by stage against bounds from the "
                    "machine model (the plan run, and the coarse pass alone) and the driver overhead; detector / classifier latency on every onnxruntime provider; "
                    "a soak at the highest speed factor (memory, threads, open files, store write time); escape and "
                    "line overkill on a held-out lot (runs `inspector eval`, or reads its report.json) with two-stage vs "
                    "coarse-only at the same escape count.",
        epilog="examples:\n"
               "  inspector bench --quick                      # a few minutes: 3 parts, short soak, 20-part lot\n"
               "  inspector bench                              # full: 30 parts, 15-min soak, 500-part lot (< 1 h on 2 cores)\n"
               "  inspector bench --eval-report out/eval/report.json   # reuse an evaluation instead of running one\n"
               "  inspector bench --skip cycle,latency,quality --soak-parts 10000 --soak-minutes 0   # the whole soak\n"
               "  inspector bench --quick --out /tmp/b --work /tmp/b/work   # leave the committed report alone")
    bench.add_argument("--quick", action="store_true", help="a few minutes: fewer parts, short soak, 20-part lot")
    bench.add_argument("--out", default=None, metavar="DIR",
                       help="where BENCHMARKS.md and docs/bench/*.png go (default: the project root)")
    bench.add_argument("--work", default=None, metavar="DIR",
                       help="scratch: result stores, raw figures bench.json, the evaluation (default out/bench)")
    bench.add_argument("--parts", type=int, default=None, help="parts timed for the cycle time (default 30; quick 3)")
    bench.add_argument("--speed-factor", type=positive_float, default=1.0,
                       help="speed factor of the cycle-time run (default 1: real time, wall s = machine s)")
    bench.add_argument("--repeats", type=int, default=None, help="timed inference calls per measurement (default 50; quick 10)")
    bench.add_argument("--soak-parts", type=int, default=None, help="soak target in parts (default 10000; quick 300)")
    bench.add_argument("--soak-minutes", type=float, default=None,
                       help="soak time budget; the soak stops at the target or the budget (default 15; quick 2; 0 = no budget)")
    bench.add_argument("--soak-cached-parts", type=int, default=None,
                       help="recorded parts the soak replays in rotation (default 8; quick 3)")
    bench.add_argument("--eval-parts", type=int, default=None,
                       help="held-out parts for inspector eval (default 500; quick 20; 0 = skip)")
    bench.add_argument("--eval-report", default=None, metavar="JSON",
                       help="read this evaluation report.json instead of running the evaluation")
    bench.add_argument("--recipe", default=None, help="recipe file (default: the reference recipe in models/)")
    bench.add_argument("--skip", default="", metavar="LIST", help="comma-separated parts to leave out: cycle,latency,soak,quality")
    bench.add_argument("--baseline", default=None, metavar="JSON",
                       help="an earlier run's bench.json: the cycle-time section shows before and after")
    bench.add_argument("--report-from", default=None, metavar="JSON",
                       help="measure nothing: write BENCHMARKS.md and the plots again from a run's bench.json")
    bench.set_defaults(handler=_bench)

    com = sub.add_parser(
        "commission", help="learn what good frames look like (per view and fine shot) and write them into the recipe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Learn the frame checks of a recipe from good parts: brightness percentiles, saturated share, "
                    "sharpness and (coarse views) the part's outline and position. Frames outside these limits end a "
                    "part as ERROR. Writes the next version of the recipe.",
        epilog="examples:\n"
               "  inspector commission --sim --parts 30                       # the reference recipe on the virtual cell\n"
               "  inspector commission --recipe R.json --station S.toml --from-archive archive/20261130/*   # real cell")
    com.add_argument("--recipe", default=None, help="recipe file (default: the reference recipe in models/)")
    source = com.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", action="store_true", help="inspect good parts on the virtual cell")
    source.add_argument("--from-archive", nargs="+", metavar="PART_DIR", help="archived folders of known-good parts")
    com.add_argument("--station", default=None, help="station config (camera calibration; required with --from-archive)")
    com.add_argument("--parts", type=int, default=30, help="parts to inspect with --sim (default 30)")
    com.add_argument("--seed", type=int, default=250_000, help="seed of the first --sim part (default 250000)")
    com.add_argument("--out", default=None, help="where the new recipe version goes (default: over --recipe)")
    com.set_defaults(handler=_commission)

    add_models_parser(sub, DEFAULT_DB)

    from .audit_command import add_parser as add_audit_parser  # inspector audit verify

    add_audit_parser(sub, DEFAULT_DB)

    from .camera_command import add_parser as add_camera_parser  # inspector camera list | snap (Aravis)

    add_camera_parser(sub)

    from .serve_command import add_parser as add_serve_parser  # inspector serve (headless, PLC interfaces)

    add_serve_parser(sub, DEFAULT_DB)

    from .msa_command import add_parser as add_msa_parser  # inspector msa (gauge R&R, attribute agreement)

    add_msa_parser(sub)

    sub.add_parser("station", help="open the station (PyQt6; operator, QA, integrator): --sim on the virtual cell, "
                                   "--config FILE on a real machine (python -m ui station …)")
    for name, text in (("train", "train the detector or the classifier (python -m training train …)"),
                       ("export", "export a checkpoint to a self-describing ONNX model (python -m training export …)"),
                       ("data", "generate data sets from the virtual cell (python -m training data …)")):
        sub.add_parser(name, help=text)
    return parser


def _sim(args: argparse.Namespace) -> int:
    import signal
    import threading

    from hardware.sim.cell import VirtualCell

    from .station_config import StationConfig

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # set here: a process started in the background inherits SIGINT ignored
        signal.signal(sig, lambda *_: stop.set())
    with VirtualCell(seed=args.seed, speed_factor=args.speed_factor, light_protocol=args.lights) as cell:
        print(f"virtual cell running (speed factor {args.speed_factor:g}, part seed {args.seed})")
        for role, path in cell.ports().items():
            print(f"  {role:<16} {path}")
        if args.station_out:
            StationConfig.from_dict(cell.station_config_dict(), source="virtual cell").save(args.station_out)
            print(f"  station config   {args.station_out}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("virtual cell stopped")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    if args.station is None and not args.sim:
        print("inspector inspect: needs --station STATION.toml (the camera calibration that maps pixels to mm); "
              "pass --sim to use the virtual cell's", file=sys.stderr)
        return 2
    import json
    from pathlib import Path

    from .demo import REFERENCE_RECIPE
    from .inference.classifier import Classifier
    from .inference.detector import Detector
    from .recipe import Recipe
    from .replay import replay_archive, replay_face_image
    from .schema import ConfigError
    from .station_config import StationConfig
    from .two_stage import TwoStage

    recipe = Recipe.load(args.recipe or REFERENCE_RECIPE)
    if args.sim:
        from hardware.sim.cell import station_config_dict

        station = StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
    else:
        try:
            station = StationConfig.load(args.station)
        except ConfigError as exc:
            print(f"inspector inspect: --station: {exc}", file=sys.stderr)
            return 2
    views = {view.face: view for view in recipe.views}
    if args.face not in views:
        raise SystemExit(f"inspect: recipe {recipe.id} has no view of face {args.face!r} (has {', '.join(views)})")
    stages = TwoStage(recipe, station, Detector.open(str(recipe.model_path("detector"))),
                      Classifier.open(str(recipe.model_path("classifier"))))
    failures = 0
    for item in args.images:
        path = Path(item)
        try:
            result = replay_archive(path, stages) if path.is_dir() else replay_face_image(path, views[args.face], stages)
        except ValueError as exc:
            print(f"inspect: {exc}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            print(json.dumps(result.as_dict()))
        else:
            print(f"{result.source}: {result.verdict} — {result.reason}")
    return 1 if failures else 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluation.command import run

    return run(args)


def _commission(args: argparse.Namespace) -> int:
    from .commissioning import main as commission

    return commission(args)


def _bench(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from .bench import BenchOptions, run_bench
    from .demo import PROJECT_ROOT

    if args.report_from:
        from .bench import rerender

        rerender(Path(args.report_from), Path(args.out) if args.out else PROJECT_ROOT,
                 baseline=Path(args.baseline) if args.baseline else None)
        return 0
    skip = tuple(part.strip() for part in args.skip.split(",") if part.strip())
    unknown = set(skip) - {"cycle", "latency", "soak", "quality"}
    if unknown:
        raise SystemExit(f"inspector bench: --skip {','.join(sorted(unknown))}: expected cycle, latency, soak or quality")
    overrides = {key: value for key, value in {
        "parts": args.parts, "latency_repeats": args.repeats, "soak_parts": args.soak_parts,
        "soak_cached_parts": args.soak_cached_parts, "eval_parts": args.eval_parts}.items() if value is not None}
    if args.soak_minutes is not None:
        overrides["soak_minutes"] = args.soak_minutes if args.soak_minutes > 0 else float("inf")
    for key, value in overrides.items():
        if value < 0 or (key in ("parts", "latency_repeats", "soak_cached_parts") and value < 1):
            raise SystemExit(f"inspector bench: --{key.replace('_', '-')} must be positive, got {value}")
    if args.speed_factor <= 0:
        raise SystemExit(f"inspector bench: --speed-factor must be positive, got {args.speed_factor}")
    overrides.update(speed_factor=args.speed_factor, skip=skip,
                     command="inspector " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ["bench"])))
    if args.out:
        overrides["out"] = Path(args.out)
    if args.work:
        overrides["work"] = Path(args.work)
    if args.eval_report:
        overrides["eval_report"] = Path(args.eval_report)
    if args.baseline:
        overrides["baseline"] = Path(args.baseline)
    if args.recipe:
        overrides["recipe"] = Path(args.recipe)
    options = BenchOptions.quick_defaults(**overrides) if args.quick else BenchOptions(**overrides)
    run_bench(options, log=lambda line: print(line, flush=True))
    return 0


def _sim_gallery(args: argparse.Namespace) -> int:
    from hardware.sim.gallery import write_gallery

    paths = write_gallery(args.outdir, seed=args.gallery_seed)
    print(f"wrote {len(paths)} images to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
