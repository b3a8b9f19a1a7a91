"""`inspector audit verify [--db DB]`: walk the audit log's hash chain.

Prints "audit log intact: N rows" and exits 0, or names the first broken row (its id and what
differs) and exits 1; exits 2 when there is no store to check. Reads only: it neither migrates nor
appends (a store written before the chain is reported as unchained)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, default_db: str) -> None:
    audit = sub.add_parser("audit", help="check the audit log (users, recipe edits, promotions, logins)",
                           description="Tamper evidence of the audit log: every row carries a SHA-256 hash "
                                       "chaining the previous row's; an edited, deleted or inserted row breaks it.")
    actions = audit.add_subparsers(title="actions", metavar="ACTION")
    verify = actions.add_parser("verify", help="walk the hash chain; report the first broken row (exit 1)")
    verify.add_argument("--db", default=default_db, help=f"result store holding the audit log (default {default_db})")
    verify.set_defaults(handler=_verify)
    audit.set_defaults(handler=lambda args: (audit.print_help(), 2)[1])


def _verify(args: argparse.Namespace) -> int:
    from .access import verify_audit
    from .results.sqlite_store import ResultStore

    if "://" not in args.db and not Path(args.db).is_file():
        print(f"inspector audit verify: no result store at {args.db!r} (pass --db)", file=sys.stderr)
        return 2
    with ResultStore(args.db, read_only=True) as store:
        check = verify_audit(store)
    if check.ok:
        print(check.message())
        return 0
    where = f"first broken row: {check.broken_id}" if check.broken_id is not None else "broken at the end"
    print(f"inspector audit verify: {check.message()} ({where}; {check.rows} rows before it intact)", file=sys.stderr)
    return 1
