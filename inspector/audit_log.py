"""The tamper-evident audit log: rows appended to `audit_log` in the result store's database, never
updated in place, each carrying `row_hash`, SHA-256 over a canonical serialisation of the row and the
previous row's hash (`prev_hash`); the newest id and hash are kept in `meta.audit_head`. Here: the
canonical row text and its chained hash, appending a chained row inside a caller's transaction, the
one-time chaining of a database written before the chain, and `verify_audit`, which walks the chain
and finds an edited, deleted or inserted row (`inspector audit verify`). Who may append what is
decided in `access`, which also creates the table (`ACCESS_SCHEMA`)."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Callable

from .results.sqlite_store import POSTGRES, ResultStore

GENESIS = "0" * 64  # prev_hash of the first audit row
AUDIT_COLUMNS = ("id", "at", "who", "role", "action", "target", "old_value", "new_value", "reason")


def append_row(execute: Any, store: ResultStore, clock: Callable[[], float], who: str, role: str, action: str,
               target: str, old: Any, new: Any, reason: str | None) -> None:
    """Append a chained row inside the caller's transaction."""
    if store.dialect is POSTGRES:
        execute("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")  # one appender at a time: one chain
    last = execute("SELECT id, row_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    row_id = 1 if last is None else int(last[0]) + 1
    prev = GENESIS if last is None or last[1] is None else last[1]
    values = (row_id, float(clock()), who, role, action, target, _dump(old), _dump(new), reason)
    digest = chain_hash(prev, values)
    execute("INSERT INTO audit_log (id, at, who, role, action, target, old_value, new_value, reason, prev_hash,"
            " row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values + (prev, digest))
    _set_head(execute, row_id, digest)


def migrate_chain(store: ResultStore, clock: Callable[[], float], system_role: str) -> None:
    """A database written before the chain: add the hash columns and chain its rows once, in id
    order, recorded as an 'audit_chain_migrated' row."""
    if _has_chain_columns(store):
        return
    with store.transaction() as execute:
        if store.dialect is POSTGRES:
            execute("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
        if _chain_columns_present(execute, store):
            return
        execute("ALTER TABLE audit_log ADD COLUMN prev_hash TEXT")
        execute("ALTER TABLE audit_log ADD COLUMN row_hash TEXT")
        prev, count = GENESIS, 0
        for row in execute(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log ORDER BY id").fetchall():
            digest = chain_hash(prev, tuple(row))
            execute("UPDATE audit_log SET prev_hash = ?, row_hash = ? WHERE id = ?", (prev, digest, row[0]))
            prev, count = digest, count + 1
        append_row(execute, store, clock, "system:migration", system_role, "audit_chain_migrated", "audit_log", None,
                   {"rows_chained": count}, "the audit log had no hash chain; existing rows chained once")


def canonical_row(values: tuple) -> str:
    """The text a row's hash covers: its columns (id, at, who, role, action, target, old, new, reason)
    as compact JSON; floats as their shortest exact repr."""
    row_id, at, *rest = values
    return json.dumps([int(row_id), float(at), *rest], ensure_ascii=False, separators=(",", ":"))


def chain_hash(prev: str, values: tuple) -> str:
    return hashlib.sha256((prev + "\n" + canonical_row(values)).encode("utf-8")).hexdigest()


def _set_head(execute: Any, row_id: int, digest: str) -> None:
    execute("INSERT INTO meta (key, value) VALUES ('audit_head', ?) ON CONFLICT (key) DO UPDATE SET value = "
            "excluded.value", (f"{row_id}:{digest}",))


def _chain_columns_present(execute: Any, store: ResultStore) -> bool:
    if store.dialect is POSTGRES:
        names = {r[0] for r in execute("SELECT column_name FROM information_schema.columns WHERE table_name ="
                                       " 'audit_log' AND table_schema = current_schema()").fetchall()}
    else:
        names = {r[1] for r in execute("PRAGMA table_info(audit_log)").fetchall()}
    return {"prev_hash", "row_hash"} <= names


def _has_chain_columns(store: ResultStore) -> bool:
    with store.reading() as execute:
        return _chain_columns_present(execute, store)


@dataclass(frozen=True)
class AuditCheck:
    """What `verify_audit` found: `ok`, the rows walked, and for a broken chain the first bad row's id
    (None when the break is at the end, e.g. the newest rows deleted) and what differs."""
    ok: bool
    rows: int
    broken_id: int | None = None
    problem: str = ""

    def message(self) -> str:
        return f"audit log intact: {self.rows} rows" if self.ok else f"audit log broken: {self.problem}"


def verify_audit(store: ResultStore) -> AuditCheck:
    """Walk the audit chain from the first row; report the first row whose content, link or id does
    not fit, and a head (newest id and hash in `meta`) that does not match the last row."""
    with store.reading() as execute:
        try:
            present = _chain_columns_present(execute, store)
        except Exception:  # noqa: BLE001 — no audit table at all
            present = False
        if not present:
            return AuditCheck(False, 0, None, "the audit log has no hash chain (no audit table, or written before "
                                              "chaining: open the store with the station once to chain it)")
        rows = execute(f"SELECT {', '.join(AUDIT_COLUMNS)}, prev_hash, row_hash FROM audit_log ORDER BY id").fetchall()
        head = execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    prev, prev_id = GENESIS, 0
    for row in rows:
        values, link, stored = tuple(row[:9]), row[9], row[10]
        row_id = int(values[0])
        described = f"row {row_id} ({values[4]} on {values[5]} by {values[2]})"
        if stored is None or link is None:
            return AuditCheck(False, row_id - 1, row_id, f"{described}: has no hash (written around the chain)")
        if link != prev:
            gap = f"; ids jump from {prev_id} to {row_id}: row(s) {prev_id + 1}–{row_id - 1} deleted" \
                if row_id != prev_id + 1 else ""
            return AuditCheck(False, prev_id, row_id,
                              f"{described}: its link to the previous row ({link[:12]}…) does not match that row's "
                              f"hash ({prev[:12]}…){gap or ': the previous row was changed or a row deleted'}")
        if row_id != prev_id + 1:
            return AuditCheck(False, prev_id, row_id, f"{described}: ids jump from {prev_id} to {row_id}")
        found = chain_hash(prev, values)
        if not hmac.compare_digest(found, stored):
            return AuditCheck(False, prev_id, row_id,
                              f"{described}: its content does not match its hash (stored {stored[:12]}…, "
                              f"recomputed {found[:12]}…): the row was edited")
        prev, prev_id = stored, row_id
    if head is not None:
        head_id, _, head_hash = str(head[0]).partition(":")
        if int(head_id) != prev_id or head_hash != prev:
            return AuditCheck(False, prev_id, int(head_id) if int(head_id) > prev_id else None,
                              f"the chain ends at row {prev_id}, but its head records row {head_id} "
                              f"({head_hash[:12]}…): the newest row(s) were deleted or changed")
    elif rows:
        return AuditCheck(False, prev_id, None, "the audit log has rows but no recorded head")
    return AuditCheck(True, prev_id)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)
