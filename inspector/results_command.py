"""`inspector results` (list and filter result records, export CSV, yield per hour and class) and
`inspector models rollback` (restore the previous version of a production recipe, audited): their
arguments and handlers. Imports only the standard library here; the store and the promotion code
load when a command runs."""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone


def add_results_parser(sub: argparse._SubParsersAction, default_db: str) -> None:
    results = sub.add_parser("results", help="list and filter result records, export CSV, yield per hour and class",
                             description="Read the result store: filter records, export them to CSV, and summarise "
                                         "yield by hour and defects by class.")
    results.add_argument("--db", default=default_db, help=f"result store (default {default_db})")
    results.add_argument("--verdict", choices=("PASS", "FAIL", "ERROR"))
    results.add_argument("--serial")
    results.add_argument("--recipe", dest="recipe_id")
    results.add_argument("--class", dest="defect_class", help="only parts with a defect of this class")
    results.add_argument("--since", help="ISO time (UTC), e.g. 2026-11-24T06:00")
    results.add_argument("--until", help="ISO time (UTC)")
    results.add_argument("--limit", type=int)
    results.add_argument("--csv", metavar="FILE", help="write the selected records to a CSV file")
    results.add_argument("--summary", action="store_true", help="yield by hour and defects by class instead of a list")
    results.set_defaults(handler=_results)


def add_models_parser(sub: argparse._SubParsersAction, default_db: str) -> None:
    models = sub.add_parser("models", help="production model versions: rollback of a promotion",
                            description="Roll the production recipe back to its previous version (written as a new "
                                        "version, audited). Needs a QA user; the PIN comes from INSPECTOR_PIN or a prompt.")
    models_sub = models.add_subparsers(title="actions", metavar="ACTION")
    rollback = models_sub.add_parser("rollback", help="restore the previous version of a recipe (models + thresholds)")
    rollback.add_argument("--recipe", required=True, help="the production recipe file")
    rollback.add_argument("--user", required=True, help="a QA user (the one who answers for it in the audit log)")
    rollback.add_argument("--reason", default=None, help="why (goes to the audit log; asked for when left out)")
    rollback.add_argument("--db", default=default_db, help=f"result store holding users and audit log (default {default_db})")
    rollback.set_defaults(handler=_models_rollback)


def _results(args: argparse.Namespace) -> int:
    from .results.sqlite_store import ResultStore

    from .run_command import db_problem

    problem = db_problem(args.db, must_exist=True)
    if problem:
        print(f"inspector results: --db: {problem}", file=sys.stderr)
        return 2
    since, until = _parse_time(args.since, "--since"), _parse_time(args.until, "--until")
    with ResultStore(args.db, read_only=True) as store:
        if args.summary:
            print("hour (UTC)          pass  fail  error  yield")
            for hour, passed, failed, errors in store.yield_by_hour(since):
                total = passed + failed + errors
                print(f"{hour}  {passed:5d} {failed:5d} {errors:6d}  {100 * passed / total:5.1f}% of {total}")
            print("\ndefect class        defects  parts")
            for name, defects, parts in store.defects_by_class(since):
                print(f"{name:<18} {defects:8d} {parts:6d}")
            return 0
        rows = store.query(verdict=args.verdict, serial=args.serial, recipe_id=args.recipe_id,
                           defect_class=args.defect_class, since=since, until=until, limit=args.limit)
        if args.csv:
            store.export_csv(args.csv, rows)
            print(f"wrote {len(rows)} records to {args.csv}")
            return 0
        for row, r in rows:
            stamp = datetime.fromtimestamp(r.finished_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            classes = ",".join(sorted({d.defect_class for d in r.defects if d.decision == "defect"})) or "-"
            print(f"{row:6d}  {stamp}  {r.serial:<12} {r.verdict:<5}  {classes:<20} {r.reason}")
        print(f"{len(rows)} records")
    return 0


def _models_rollback(args: argparse.Namespace) -> int:
    import getpass

    from .access import AccessControl, AccessDenied
    from .promotion import PromotionRefused, rollback
    from .results.sqlite_store import ResultStore
    from .run_command import db_problem

    problem = db_problem(args.db, must_exist=True)
    if problem:
        print(f"inspector models rollback: --db: {problem} (users and audit log live there)", file=sys.stderr)
        return 2
    pin = os.environ.get("INSPECTOR_PIN") or getpass.getpass(f"PIN for {args.user}: ")
    try:
        reason = args.reason or input("Reason (goes to the audit log): ")
    except EOFError:
        reason = ""
    with ResultStore(args.db, read_only=True) as store:
        access = AccessControl(store)
        try:
            result = rollback(access.login(args.user, pin), access, args.recipe, reason)
        except (AccessDenied, PromotionRefused) as exc:
            print(f"inspector models rollback: {exc}", file=sys.stderr)
            return 1
    print(result.message)
    return 0


def _parse_time(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"inspector results: {option} {text!r} is not an ISO time such as 2026-11-24T06:00")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()

