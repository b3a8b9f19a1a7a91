"""`inspector run`: its arguments and handler. A lot on the virtual cell (`--sim`, with options that
make the emulated stage controller more or less like real firmware), or on the devices of a station
config (`--config`: a real stage; lights and cameras may be virtual, a dry run before the optics
arrive). Imports only argparse here; the cycle's stack loads when the command runs."""
from __future__ import annotations

import argparse
import math
import os
import sys

SIM_ONLY = ("speed_factor", "fault", "ideal_controller", "reply_latency_ms", "work_offset", "garble_first_move")


def latency_range_ms(text: str) -> tuple[float, float]:
    """'LOW-HIGH' (or one value) in ms → (low, high) in seconds."""
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"{text!r}: a latency cannot be negative")
    pieces = text.split("-")
    try:
        if len(pieces) > 2:
            raise ValueError
        low, high = (float(pieces[0]), float(pieces[-1]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW-HIGH in milliseconds, e.g. 30-200") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected finite milliseconds, e.g. 30-200")
    if low < 0 or high < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a latency cannot be negative")
    if low > high:
        raise argparse.ArgumentTypeError(f"{text!r}: the low end is above the high end")
    return (low / 1000.0, high / 1000.0)


def work_offset(text: str) -> tuple[float, ...]:
    """'X,Y,Z,A,B' → five finite numbers."""
    pieces = [piece.strip() for piece in text.split(",")]
    if len(pieces) != 5:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 5 comma-separated values X,Y,Z,A,B, got {len(pieces)}")
    try:
        values = tuple(float(piece) for piece in pieces)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers X,Y,Z,A,B, e.g. 5,-3,0,0,0") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected finite numbers")
    return values


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number")
    return value


SQLITE_HEADER = b"SQLite format 3\x00"


def db_problem(location: str, *, must_exist: bool = False) -> str | None:
    """What is wrong with a result store location (`--db`), in one line; None when it looks usable.
    A file path or sqlite:///path (its folder is created when it need not exist yet), or
    postgresql://… / postgres://…; the store itself is not opened here."""
    location = str(location)
    if "://" in location and not location.startswith("sqlite:///"):
        from urllib.parse import urlsplit

        scheme = location.split("://", 1)[0]
        if scheme not in ("postgresql", "postgres"):
            return (f"{location!r} is not a result store: expected a file path, sqlite:///PATH or "
                    f"postgresql://USER@HOST/DB (scheme {scheme!r} unknown)")
        try:
            parts = urlsplit(location)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
        except ValueError as exc:
            return f"PostgreSQL URL {_redact(location)!r} is malformed: {exc}"
        if any(c.isspace() for c in location):
            return f"PostgreSQL URL {_redact(location)!r} is malformed: expected postgresql://USER@HOST[:PORT]/DB"
        return None
    path = location[len("sqlite:///"):] if location.startswith("sqlite:///") else location
    if not path or "\x00" in path:
        return f"result store path {path!r} is empty or not a path"
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        return f"result store {path!r} is a directory; expected a database file, e.g. {os.path.join(path, 'results.db')}"
    if os.path.exists(path):
        if not os.path.isfile(path):
            return f"result store {path!r} is not a regular file"
        try:
            with open(path, "rb") as handle:
                head = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            return f"result store {path!r} cannot be read: {exc.strerror or exc}"
        if head and head != SQLITE_HEADER:
            return f"result store {path!r} is not a SQLite database (another kind of file)"
        return None
    if must_exist:
        return f"no result store at {path!r} (run some parts first, or pass --db)"
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"result store {path!r}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"result store {path!r}: cannot create it, {existing} is not writable"
    return None


def _redact(url: str) -> str:
    """A URL with its password replaced by ***, for messages."""
    head, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{head}{sep}{userinfo}{at}{host}" if at else url


def add_parser(sub, default_db: str) -> argparse.ArgumentParser:
    run = sub.add_parser(
        "run", help="inspect a lot: --sim on the virtual cell, --config FILE on a station's devices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the inspection cycle on a lot. With --sim the virtual cell supplies the machine and the "
                    "parts, and the summary scores verdicts against its ground truth. With --config the devices are "
                    "those of a station config; where its lights (url = \"virtual\") and cameras (backend = "
                    "\"virtual\") are virtual, the virtual cell renders seeded parts at the pose the real stage "
                    "reports, and the summary scores them as with --sim (a dry run of a real stage).",
        epilog="examples:\n"
               "  inspector run --sim --parts 5\n"
               "  inspector run --sim --parts 5 --reply-latency-ms 30-200 --work-offset 5,-3,0,0,0 --garble-first-move\n"
               "  inspector run --sim --parts 5 --ideal-controller          # the same lot on the idealised stage\n"
               "  inspector run --config station.toml --parts 2            # a real stage, virtual lights and cameras")
    mode = run.add_mutually_exclusive_group(required=True)
    mode.add_argument("--sim", action="store_true", help="use the virtual cell (stage, lights, cameras, parts)")
    mode.add_argument("--config", metavar="FILE", help="use the devices of this station config (TOML or JSON)")
    run.add_argument("--parts", type=int, default=20, help="parts to inspect (default 20)")
    run.add_argument("--seed", type=int, default=None,
                     help="seed of the first virtual part (default 500000: a range no model was trained, tuned or "
                          "evaluated on)")
    run.add_argument("--recipe", default=None, help="recipe file (default: the reference recipe in models/)")
    run.add_argument("--db", default=default_db, help=f"result store (default {default_db})")
    run.add_argument("--archive", default=os.path.join("out", "archive"), help="image archive folder ('' for none)")
    sim = run.add_argument_group("virtual cell (--sim only)")
    sim.add_argument("--speed-factor", type=positive_float, default=None,
                     help="machine time runs this many times faster than wall time (default 1)")
    from hardware.sim.faults import FAULT_KINDS  # light: the names only
    sim.add_argument("--fault", action="append", default=[], choices=FAULT_KINDS, metavar="KIND",
                     help="inject a fault into the virtual cell once it is homed; it holds for the whole lot "
                          f"(repeat for several): {', '.join(FAULT_KINDS)}")
    sim.add_argument("--ideal-controller", action="store_true",
                     help="the idealised stage controller: positions not rounded to whole motor steps")
    sim.add_argument("--reply-latency-ms", type=latency_range_ms, metavar="LOW-HIGH",
                     help="the controller answers each line after a random delay in this range (wall ms), e.g. 30-200")
    sim.add_argument("--work-offset", type=work_offset, metavar="X,Y,Z,A,B",
                     help="a G54 work offset stored in the controller (the station moves in machine coordinates "
                          "and must not be misled by it); write --work-offset=-5,0,0,0,0 for a leading minus")
    sim.add_argument("--garble-first-move", action="store_true",
                     help="line noise: the first G-code line after homing arrives garbled (the driver resends it)")
    run.set_defaults(handler=handle, parser=run)
    return run


def motion_options(args: argparse.Namespace) -> dict:
    """The stage emulator's keyword options (GrblEmulator) the arguments ask for."""
    options: dict = {}
    if args.ideal_controller:
        options["ideal"] = True
    if args.reply_latency_ms is not None:
        options["reply_latency_s"] = args.reply_latency_ms
    if args.work_offset is not None:
        options["work_offsets"] = {"G54": args.work_offset}
    return options


def handle(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.parts < 1:
        parser.error(f"argument --parts: must be at least 1, got {args.parts}")
    if args.config is not None:
        given = [name for name in SIM_ONLY if getattr(args, name) not in (None, False, [])]
        if given:
            parser.error(f"argument --{given[0].replace('_', '-')}: only with --sim (the virtual cell's stage)")
    problem = db_problem(args.db)
    if problem:
        print(f"inspector run: --db: {problem}", file=sys.stderr)
        return 2
    from .demo import REFERENCE_RECIPE

    out = lambda line: print(line, flush=True)  # noqa: E731
    first_seed = 500_000 if args.seed is None else args.seed
    common = dict(first_seed=first_seed, recipe_path=args.recipe or REFERENCE_RECIPE, db=args.db,
                  archive_dir=args.archive or None, out=out)
    if args.sim:
        from .demo import run_sim_lot

        run_sim_lot(args.parts, speed_factor=args.speed_factor or 1.0, faults=args.fault,
                    motion_options=motion_options(args), garble_first_move=args.garble_first_move, **common)
        return 0
    from hardware.errors import HardwareError

    from .demo import run_station_lot
    from .schema import ConfigError

    try:
        from .recipe import Recipe
        from .station_config import StationConfig

        StationConfig.load(args.config).check_recipe(Recipe.load(common["recipe_path"]))
        run_station_lot(args.config, args.parts, **common)
    except ConfigError as exc:
        print(f"inspector run: {exc}", file=sys.stderr)
        return 2
    except HardwareError as exc:
        print(f"inspector run: {exc}", file=sys.stderr)
        return 1
    return 0
