"""Who may do what at the station, and the audit log of every change.

Three roles, one per user: a line operator runs the cell and may override a verdict with a reason;
a QA engineer also reviews, relabels, exports, retrains and promotes models; an integrator also
connects, jogs, sets lights, calibrates and edits recipes (thresholds, rules, views). PINs are
stored as salted scrypt hashes, never in clear. The core checks permissions itself (`Session.require`),
so a UI that forgets a check still cannot let an operator change a threshold.

Users and the audit log live in the result store's file (SQLite or PostgreSQL): one transaction per
change, rows appended, never updated in place.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from .results.sqlite_store import ResultStore

ROLES = ("operator", "qa", "integrator")
PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": frozenset({"run", "override"}),
    "qa": frozenset({"run", "override", "review", "export_labels", "retrain", "promote_model"}),
    "integrator": frozenset({"run", "override", "connect", "jog", "lights", "calibrate", "edit_recipe"}),
}
ACTIONS = frozenset().union(*PERMISSIONS.values())
MIN_PIN_DIGITS = 4

ACCESS_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    salt TEXT NOT NULL,
    pin_hash TEXT NOT NULL,
    created_at {real} NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    id {id},
    at {real} NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target);
"""


class AccessDenied(PermissionError):
    """A wrong name or PIN, or an action the user's role does not allow."""


@dataclass(frozen=True)
class Session:
    """A logged-in user. Pass it to core calls that change something; they call `require`."""

    user: str
    role: str

    def allows(self, action: str) -> bool:
        return action in PERMISSIONS[self.role]

    def require(self, action: str) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}, expected one of {', '.join(sorted(ACTIONS))}")
        if not self.allows(action):
            raise AccessDenied(f"{self.user} ({self.role}) may not {action.replace('_', ' ')}; "
                               f"that needs the role {' or '.join(r for r in ROLES if action in PERMISSIONS[r])}")


@dataclass(frozen=True)
class AuditEntry:
    at: float
    who: str
    role: str
    action: str
    target: str
    old: Any
    new: Any
    reason: str | None


def hash_pin(pin: str, salt: bytes) -> str:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


def check_pin(pin: Any) -> str:
    if not isinstance(pin, str) or not pin.isdigit() or len(pin) < MIN_PIN_DIGITS:
        raise ValueError(f"a PIN must be at least {MIN_PIN_DIGITS} digits")
    return pin


class AccessControl:
    """Users, PIN login and the audit log, kept in `store`."""

    def __init__(self, store: ResultStore):
        self.store = store
        store.create_tables(ACCESS_SCHEMA)

    # -- users -----------------------------------------------------------------------------------
    def has_users(self) -> bool:
        with self.store.reading() as execute:
            return execute("SELECT COUNT(*) FROM users").fetchone()[0] > 0

    def users(self) -> list[tuple[str, str]]:
        """(name, role) of every user, by name."""
        with self.store.reading() as execute:
            return [tuple(r) for r in execute("SELECT name, role FROM users ORDER BY name").fetchall()]

    def add_user(self, name: str, role: str, pin: str, *, by: Session | None = None) -> None:
        """Add a user. The first user of a station may be added without a session (commissioning);
        after that only an integrator adds users."""
        if not isinstance(name, str) or not name.strip() or len(name) > 40:
            raise ValueError(f"user name {name!r}: expected 1–40 characters")
        if role not in ROLES:
            raise ValueError(f"user {name!r}: unknown role {role!r}, expected one of {', '.join(ROLES)}")
        check_pin(pin)
        if by is None and self.has_users():
            raise AccessDenied(f"adding user {name!r} needs an integrator's session")
        if by is not None and by.role != "integrator":
            raise AccessDenied(f"{by.user} ({by.role}) may not add users; that needs the role integrator")
        salt = os.urandom(16)
        creator = by.user if by else "(commissioning)"
        with self.store.transaction() as execute:
            if execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"user {name!r} exists already")
            execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                    (name, role, salt.hex(), hash_pin(pin, salt), time.time(), creator))
            self._append(execute, by or Session(creator, "integrator"), "add_user", f"user:{name}", None, role, None)

    def login(self, name: str, pin: str) -> Session:
        with self.store.reading() as execute:
            row = execute("SELECT role, salt, pin_hash FROM users WHERE name = ?", (name,)).fetchone()
        if row is None or not hmac.compare_digest(hash_pin(str(pin), bytes.fromhex(row[1])), row[2]):
            raise AccessDenied(f"wrong user name or PIN for {name!r}")
        return Session(name, row[0])

    # -- audit -----------------------------------------------------------------------------------
    def record(self, session: Session, action: str, target: str, old: Any = None, new: Any = None,
               reason: str | None = None) -> None:
        """Append one audit row (who, when, old → new) after checking the session may do `action`."""
        session.require(action)
        with self.store.transaction() as execute:
            self._append(execute, session, action, target, old, new, reason)

    @staticmethod
    def _append(execute: Any, session: Session, action: str, target: str, old: Any, new: Any,
                reason: str | None) -> None:
        execute("INSERT INTO audit_log (at, who, role, action, target, old_value, new_value, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), session.user, session.role, action, target, _dump(old), _dump(new), reason))

    def audit(self, *, target: str | None = None, limit: int = 200) -> list[AuditEntry]:
        """Newest first; `target` filters to one thing (e.g. 'recipe:housing-40x30')."""
        sql = "SELECT at, who, role, action, target, old_value, new_value, reason FROM audit_log"
        args: tuple = ()
        if target is not None:
            sql, args = sql + " WHERE target = ?", (target,)
        with self.store.reading() as execute:
            rows = execute(sql + " ORDER BY id DESC LIMIT ?", args + (limit,)).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _load(r[5]), _load(r[6]), r[7]) for r in rows]


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)
