"""`inspector eval`: the held-out lot (or, with --faults / --unknown-kinds, the fail-closed figures),
its report and what it publishes."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from ..demo import PROJECT_ROOT, REFERENCE_RECIPE
from . import EvalOptions, evaluate, publish
from .report import COMPARE_BEGIN, comparison, headline, merge_json, replace_block


def run(args: argparse.Namespace) -> int:
    if args.teach_kind:
        return _teach(args)
    if args.faults or args.unknown_kinds:
        from .robustness import main as robustness

        return robustness(args, Path(args.recipe or REFERENCE_RECIPE), PROJECT_ROOT)
    if args.publish_from:
        try:
            report = json.loads(Path(args.publish_from).read_text(encoding="utf-8"))
            paths = publish(report, PROJECT_ROOT)
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"inspector eval: --publish-from {args.publish_from}: {exc}")
        print("\n".join(f"wrote {p}" for p in paths + _publish_baseline(args, report, PROJECT_ROOT)))
        return 0
    for name, value, low in (("--parts", args.parts, 1), ("--workers", args.workers, 1)):
        if value < low:
            raise SystemExit(f"inspector eval: {name} must be at least {low}, got {value}")
    if not args.speed_factor > 0 or args.speed_factor > 1000:
        raise SystemExit(f"inspector eval: --speed-factor must be in (0, 1000], got {args.speed_factor}")
    options = EvalOptions(recipe=Path(args.recipe or REFERENCE_RECIPE), parts=args.parts, first_seed=args.seed,
                          speed_factor=args.speed_factor, workers=args.workers, work=Path(args.out))
    command = "inspector " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ["eval"]))
    report = evaluate(options, command=command, log=lambda line: print(line, flush=True))
    print("\n".join(headline(report)[2:]))
    print(f"report: {Path(args.out) / 'report.md'}")
    if args.publish:
        print("\n".join(f"wrote {p}" for p in publish(report, PROJECT_ROOT) + _publish_baseline(args, report, PROJECT_ROOT)))
    return 0


def _publish_baseline(args: argparse.Namespace, report: dict, root) -> list:
    if not args.baseline:
        return []
    baseline = json.loads(Path(args.baseline).read_text(encoding="utf-8"))
    lines = comparison(report, baseline, args.baseline)
    return [merge_json(root / "docs" / "eval" / "robustness.json", {"comparison": lines}),
            replace_block(root / "BENCHMARKS.md", lines, COMPARE_BEGIN)]


def _teach(args: argparse.Namespace) -> int:
    from hardware.sim.part import NEW_KINDS

    from .teach_curve import publish_teach, teach_curve, teach_lines
    if args.teach_kind not in NEW_KINDS:
        raise SystemExit(f"inspector eval: --teach-kind {args.teach_kind!r}: the renderer draws only "
                         f"{', '.join(NEW_KINDS)} on request (a kind the shipped models never saw)")
    if min(args.teach_examples) < 1 or args.teach_parts < 1 or args.teach_old_parts < 1:
        raise SystemExit("inspector eval: --teach-examples, --teach-parts and --teach-old-parts must be at least 1")
    out = Path(args.out)
    result = teach_curve(Path(args.recipe or REFERENCE_RECIPE), args.teach_kind, sorted(args.teach_examples),
                         lot_parts=args.teach_parts, old_parts=args.teach_old_parts, work=out / "teach",
                         speed_factor=args.speed_factor, workers=args.workers, log=lambda line: print(line, flush=True))
    print("\n".join(teach_lines(result)))
    paths = publish_teach(result, PROJECT_ROOT, out) if args.publish else []
    if not args.publish:
        (out / "teach.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        paths.append(out / "teach.json")
    print("\n".join(f"wrote {p}" for p in paths))
    return 0

