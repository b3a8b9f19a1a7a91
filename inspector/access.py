"""Who may do what at the station, and the tamper-evident audit log of every change.

Three roles, one per user: a line operator runs the cell and may override a verdict with a reason;
a QA engineer also reviews, relabels, exports, retrains and promotes models; an integrator also
connects, jogs, sets lights, calibrates, edits recipes (thresholds, rules, views) and manages users.
PINs are stored as salted scrypt hashes, never in clear.

Sessions are issued only by `AccessControl.login` (or, for the few bootstrap paths, by
`AccessControl.system_session`, audited). A `Session` carries an opaque random token that the issuing
`AccessControl` keeps; `AccessControl.check(session, action)` (and `Session.require`, which asks the
issuer) accepts it only while that token is live: issued by it, not logged out, not expired, the name
and role unchanged, and the role allowing the action. A `Session(...)` built by hand — with or without
a copied name, role or made-up token — is refused with `AccessDenied` naming the action. Every
changing core call (recipe save, review labels, overrides, promotion, user management, calibration)
checks its session itself, so a UI that forgets a check still cannot let an operator change a threshold.

Logins are rate limited: after `LOCK_AFTER` wrong PINs in a row a name is locked for
`LOCK_BASE_S`, doubling with each further wrong PIN (up to `LOCK_MAX_S`), or until an integrator
unlocks it. An unknown name costs the same scrypt work as a known one and is locked the same way.
Logins, failures, lockouts, unlocks and logouts are audited.

Users and the audit log live in the result store's database (SQLite or PostgreSQL): one transaction
per change, rows appended, never updated in place. Each audit row carries `row_hash`, SHA-256 over a
canonical serialisation of the row and the previous row's hash (`prev_hash`); the newest id and hash
are kept in `meta.audit_head`. `verify_audit` walks the chain: an edited, deleted or inserted row is
found (`inspector audit verify`). The chain itself (hashing, appending, migrating, verifying) lives in
`audit_log`; its names are importable from here as before.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .audit_log import (AUDIT_COLUMNS, GENESIS, AuditCheck, _load, append_row, canonical_row, chain_hash, migrate_chain,
                        verify_audit)
from .results.sqlite_store import ResultStore

__all__ = ["ROLES", "PERMISSIONS", "ACTIONS", "MIN_PIN_DIGITS", "SYSTEM_ROLE", "SYSTEM_PURPOSES", "SESSION_TTL_S",
           "SYSTEM_SESSION_TTL_S", "LOCK_AFTER", "LOCK_BASE_S", "LOCK_MAX_S", "ACCESS_SCHEMA", "AccessDenied",
           "Session", "require", "hash_pin", "check_pin", "AuditEntry", "AccessControl",
           # the audit chain, from audit_log
           "GENESIS", "AUDIT_COLUMNS", "canonical_row", "chain_hash", "AuditCheck", "verify_audit"]

ROLES = ("operator", "qa", "integrator")
PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": frozenset({"run", "override"}),
    "qa": frozenset({"run", "override", "review", "export_labels", "retrain", "promote_model"}),
    "integrator": frozenset({"run", "override", "connect", "jog", "lights", "calibrate", "edit_recipe",
                             "manage_users"}),
}
ACTIONS = frozenset().union(*PERMISSIONS.values())
MIN_PIN_DIGITS = 4

SYSTEM_ROLE = "system"
# The bootstrap paths that act without a person, and what each may do. A system session is issued by
# `AccessControl.system_session`, audited, and short-lived; it adds users only to a station that has none.
SYSTEM_PURPOSES: dict[str, frozenset[str]] = {
    "commissioning": frozenset({"manage_users", "edit_recipe", "calibrate"}),
    "evaluation": frozenset({"edit_recipe"}),
    "line": frozenset({"run"}),  # inspector serve: parts the PLC asks for (no person at the station)
}
SESSION_TTL_S = 12 * 3600.0  # a shift and a half; then log in again
SYSTEM_SESSION_TTL_S = 300.0
LOCK_AFTER = 5  # wrong PINs in a row
LOCK_BASE_S = 60.0  # the first lock; doubles with each further wrong PIN
LOCK_MAX_S = 3600.0

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
    reason TEXT,
    prev_hash TEXT,
    row_hash TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target);
CREATE TABLE IF NOT EXISTS login_state (
    name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until {real} NOT NULL
);
"""


class AccessDenied(PermissionError):
    """A wrong name or PIN, a locked name, a missing or forged session, or an action the role does not allow."""


@dataclass(frozen=True)
class Session:
    """A logged-in user, issued by `AccessControl.login`. Pass it to core calls that change
    something; they check it with the issuer. Equality compares name and role only and grants nothing:
    what counts is the token, which only the issuer can vouch for."""

    user: str
    role: str
    token: bytes | None = field(default=None, repr=False, compare=False)
    # keeps the issuer alive while the session is (the issuer is looked up in a registry, never here)
    _keepalive: Any = field(default=None, repr=False, compare=False)

    def allows(self, action: str) -> bool:
        return action in _permissions(self.role, self.user)

    def require(self, action: str) -> None:
        """Refuse (AccessDenied) unless this is a live session issued by an AccessControl and its role
        allows `action`."""
        require(self, action)


def _permissions(role: str, user: str) -> frozenset[str]:
    if role == SYSTEM_ROLE:
        return SYSTEM_PURPOSES.get(user.removeprefix("system:"), frozenset())
    return PERMISSIONS.get(role, frozenset())


def _what(action: str) -> str:
    return action.replace("_", " ")


@dataclass
class _Grant:
    user: str
    role: str
    issued_at: float
    expires_at: float


# token → the AccessControl that issued it (weak: a closed station's sessions die with it)
_ISSUERS: "weakref.WeakValueDictionary[bytes, AccessControl]" = weakref.WeakValueDictionary()


def require(session: Any, action: str, *, access: "AccessControl | None" = None,
            store: ResultStore | None = None) -> "AccessControl":
    """Check that `session` is a live session allowed to do `action`; returns its issuer.
    `access`: the session must have been issued by that AccessControl; `store`: by one keeping its
    users in that result store (a queue refuses sessions of another station's database)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}, expected one of {', '.join(sorted(ACTIONS))}")
    if not isinstance(session, Session):
        got = "none given" if session is None else f"got a {type(session).__name__}, not a session"
        raise AccessDenied(f"{_what(action)} refused: needs a logged-in session ({got})")
    issuer = access if access is not None else (_ISSUERS.get(session.token) if session.token else None)
    if issuer is None:
        raise AccessDenied(f"{_what(action)} refused: the session of {session.user!r} was not issued by a login "
                           f"(forged, logged out or expired)")
    issuer.check(session, action)
    if store is not None and not issuer.keeps_users_in(store):
        raise AccessDenied(f"{_what(action)} refused: the session of {session.user!r} belongs to another "
                           f"station's database ({issuer.store.path})")
    return issuer


def hash_pin(pin: str, salt: bytes) -> str:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


def check_pin(pin: Any) -> str:
    if not isinstance(pin, str) or not pin.isdigit() or len(pin) < MIN_PIN_DIGITS:
        raise ValueError(f"a PIN must be at least {MIN_PIN_DIGITS} digits")
    return pin


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


class AccessControl:
    """Users, PIN login, sessions and the audit log, kept in `store`. `clock`: seconds (tests move it)."""

    def __init__(self, store: ResultStore, *, clock: Callable[[], float] = time.time,
                 session_ttl_s: float = SESSION_TTL_S):
        self.store = store
        self._clock = clock
        self.session_ttl_s = float(session_ttl_s)
        self._grants: dict[bytes, _Grant] = {}
        self._grants_lock = threading.Lock()
        store.create_tables(ACCESS_SCHEMA)
        self._migrate_chain()

    # -- sessions --------------------------------------------------------------------------------
    def _issue(self, user: str, role: str, ttl_s: float) -> Session:
        token = secrets.token_bytes(32)
        now = self._clock()
        with self._grants_lock:
            self._grants[token] = _Grant(user, role, now, now + ttl_s)
        _ISSUERS[token] = self
        return Session(user, role, token, self)

    def check(self, session: Any, action: str) -> Session:
        """Refuse (AccessDenied naming the action) unless `session` is live — issued by this
        AccessControl, not logged out, not expired, unaltered — and its role allows `action`."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}, expected one of {', '.join(sorted(ACTIONS))}")
        if not isinstance(session, Session):
            got = "none given" if session is None else f"got a {type(session).__name__}, not a session"
            raise AccessDenied(f"{_what(action)} refused: needs a logged-in session ({got})")
        with self._grants_lock:
            grant = self._grants.get(session.token) if isinstance(session.token, bytes) else None
            if grant is not None and grant.expires_at <= self._clock():
                del self._grants[session.token]
                raise AccessDenied(f"{_what(action)} refused: the session of {session.user!r} expired; log in again")
        if grant is None:
            raise AccessDenied(f"{_what(action)} refused: the session of {session.user!r} was not issued by a login "
                               f"at this station (forged, logged out or expired)")
        if (grant.user, grant.role) != (session.user, session.role):
            raise AccessDenied(f"{_what(action)} refused: the session was issued to {grant.user!r} ({grant.role}), "
                               f"not {session.user!r} ({session.role}); altered session")
        if action not in _permissions(grant.role, grant.user):
            if grant.role == SYSTEM_ROLE:
                raise AccessDenied(f"{grant.user} may not {_what(action)}")
            needs = " or ".join(r for r in ROLES if action in PERMISSIONS[r])
            raise AccessDenied(f"{grant.user} ({grant.role}) may not {_what(action)}; that needs the role {needs}")
        return session

    def is_live(self, session: Any) -> bool:
        with self._grants_lock:
            grant = self._grants.get(getattr(session, "token", None) or b"")
        return grant is not None and grant.expires_at > self._clock() \
            and (grant.user, grant.role) == (session.user, session.role)

    def keeps_users_in(self, store: ResultStore) -> bool:
        if store is self.store:
            return True
        a, b = str(store.path), str(self.store.path)
        if "://" in a or "://" in b:
            return a == b
        return Path(a).resolve() == Path(b).resolve()

    def system_session(self, purpose: str, reason: str | None = None) -> Session:
        """A short-lived session for a bootstrap path that acts without a person (the first user of a
        station, commissioning, the evaluation writing recipes); audited as 'system_session'."""
        if purpose not in SYSTEM_PURPOSES:
            raise ValueError(f"system session: unknown purpose {purpose!r}, expected one of "
                             f"{', '.join(sorted(SYSTEM_PURPOSES))}")
        user = f"system:{purpose}"
        with self.store.transaction() as execute:
            self._append(execute, user, SYSTEM_ROLE, "system_session", user, None,
                         sorted(SYSTEM_PURPOSES[purpose]), reason)
        return self._issue(user, SYSTEM_ROLE, SYSTEM_SESSION_TTL_S)

    def logout(self, session: Session | None) -> bool:
        """End a session (audited). Returns False when it was not live (already ended, forged)."""
        if not isinstance(session, Session) or not isinstance(session.token, bytes):
            return False
        with self._grants_lock:
            grant = self._grants.pop(session.token, None)
        _ISSUERS.pop(session.token, None)
        if grant is None:
            return False
        with self.store.transaction() as execute:
            self._append(execute, grant.user, grant.role, "logout", f"user:{grant.user}", None, None, None)
        return True

    # -- users -----------------------------------------------------------------------------------
    def has_users(self) -> bool:
        with self.store.reading() as execute:
            return execute("SELECT COUNT(*) FROM users").fetchone()[0] > 0

    def users(self) -> list[tuple[str, str]]:
        """(name, role) of every user, by name."""
        with self.store.reading() as execute:
            return [tuple(r) for r in execute("SELECT name, role FROM users ORDER BY name").fetchall()]

    def add_user(self, name: str, role: str, pin: str, *, by: Session | None = None) -> None:
        """Add a user; `by` an integrator's session. The first user of a station is added with
        `system_session('commissioning')`, which adds no user once the station has one."""
        if not isinstance(name, str) or not name.strip() or len(name) > 40:
            raise ValueError(f"user name {name!r}: expected 1–40 characters")
        if role not in ROLES:
            raise ValueError(f"user {name!r}: unknown role {role!r}, expected one of {', '.join(ROLES)}")
        check_pin(pin)
        if by is None:
            raise AccessDenied(f"manage users refused: adding user {name!r} needs an integrator's session (the first "
                               f"user of a station: access.system_session('commissioning'))")
        try:
            self.check(by, "manage_users")
        except AccessDenied as exc:
            if isinstance(by, Session) and by.role in ROLES and self.is_live(by):
                raise AccessDenied(f"{by.user} ({by.role}) may not add users; that needs the role integrator") from None
            raise AccessDenied(f"adding user {name!r}: {exc}") from None
        salt = os.urandom(16)
        with self.store.transaction() as execute:
            if by.role == SYSTEM_ROLE and execute("SELECT COUNT(*) FROM users").fetchone()[0] > 0:
                raise AccessDenied(f"adding user {name!r} needs an integrator's session: a system session adds "
                                   f"only the first user of a station")
            if execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"user {name!r} exists already")
            execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                    (name, role, salt.hex(), hash_pin(pin, salt), self._clock(), by.user))
            self._append(execute, by.user, by.role, "add_user", f"user:{name}", None, role, None)

    def unlock_user(self, name: str, *, by: Session, reason: str | None = None) -> None:
        """Lift a login lock (and forget the wrong PINs) for `name`; an integrator's call, audited."""
        self.check(by, "manage_users")
        key = _login_key(name)
        with self.store.transaction() as execute:
            found = execute("SELECT failures, locked_until FROM login_state WHERE name = ?", (key,)).fetchone()
            execute("DELETE FROM login_state WHERE name = ?", (key,))
            self._append(execute, by.user, by.role, "unlock_user", f"user:{key}",
                         None if found is None else {"failures": int(found[0]), "locked_until": found[1]},
                         {"failures": 0}, reason)

    def login(self, name: str, pin: str) -> Session:
        """A session for `name` when `pin` is right. A wrong PIN, an unknown name and a locked name all
        cost the same scrypt work; wrong PINs count towards the lock; everything is audited."""
        key = _login_key(name)
        now = self._clock()
        with self.store.reading() as execute:
            row = execute("SELECT role, salt, pin_hash FROM users WHERE name = ?", (key,)).fetchone() \
                if isinstance(name, str) and len(name) <= 40 else None
            state = execute("SELECT failures, locked_until FROM login_state WHERE name = ?", (key,)).fetchone()
        salt, expected = (bytes.fromhex(row[1]), row[2]) if row is not None else (_DUMMY_SALT, secrets.token_hex(32))
        right = hmac.compare_digest(hash_pin(str(pin), salt), expected) and row is not None
        role = row[0] if row is not None else "(unknown user)"
        failures, locked_until = (int(state[0]), float(state[1])) if state is not None else (0, 0.0)
        if locked_until > now:
            with self.store.transaction() as execute:
                self._append(execute, key, role, "login_refused", f"user:{key}", None, None,
                             f"locked until {locked_until:.0f} after {failures} wrong PINs")
            raise AccessDenied(f"log in refused: {key!r} is locked after {failures} wrong PINs; try again in "
                               f"{locked_until - now:.0f} s or ask an integrator to unlock it")
        if not right:
            failures += 1
            lock = 0.0
            if failures >= LOCK_AFTER:
                lock = min(LOCK_MAX_S, LOCK_BASE_S * 2 ** (failures - LOCK_AFTER))
            with self.store.transaction() as execute:
                execute("INSERT INTO login_state (name, failures, locked_until) VALUES (?, ?, ?) ON CONFLICT (name)"
                        " DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until",
                        (key, failures, now + lock if lock else 0.0))
                self._append(execute, key, role, "login_failed", f"user:{key}", None, {"failures": failures}, None)
                if lock:
                    self._append(execute, key, role, "lockout", f"user:{key}", None,
                                 {"failures": failures, "locked_s": lock, "locked_until": now + lock}, None)
            if lock:
                raise AccessDenied(f"wrong user name or PIN for {key!r}; locked for {lock:.0f} s after "
                                   f"{failures} wrong PINs")
            raise AccessDenied(f"wrong user name or PIN for {key!r}")
        with self.store.transaction() as execute:
            if state is not None:
                execute("DELETE FROM login_state WHERE name = ?", (key,))
            self._append(execute, key, role, "login", f"user:{key}", None, None, None)
        return self._issue(key, role, self.session_ttl_s)

    def login_state(self, name: str) -> tuple[int, float]:
        """(wrong PINs in a row, locked until [unix s; 0 when not locked]) for `name`."""
        with self.store.reading() as execute:
            found = execute("SELECT failures, locked_until FROM login_state WHERE name = ?",
                            (_login_key(name),)).fetchone()
        return (0, 0.0) if found is None else (int(found[0]), float(found[1]))

    # -- audit -----------------------------------------------------------------------------------
    def record(self, session: Session, action: str, target: str, old: Any = None, new: Any = None,
               reason: str | None = None) -> None:
        """Append one audit row (who, when, old → new) after checking the session may do `action`."""
        self.check(session, action)
        with self.store.transaction() as execute:
            self._append(execute, session.user, session.role, action, target, old, new, reason)

    def _append(self, execute: Any, who: str, role: str, action: str, target: str, old: Any, new: Any,
                reason: str | None) -> None:
        """Append a chained row inside the caller's transaction."""
        append_row(execute, self.store, self._clock, who, role, action, target, old, new, reason)

    def audit(self, *, target: str | None = None, action: str | None = None, limit: int = 200) -> list[AuditEntry]:
        """Newest first; `target` filters to one thing (e.g. 'recipe:housing-40x30'), `action` to one kind."""
        sql = "SELECT at, who, role, action, target, old_value, new_value, reason FROM audit_log"
        where, args = [], []
        for column, value in (("target", target), ("action", action)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.store.reading() as execute:
            rows = execute(sql + " ORDER BY id DESC LIMIT ?", tuple(args) + (limit,)).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _load(r[5]), _load(r[6]), r[7]) for r in rows]

    def verify(self) -> "AuditCheck":
        return verify_audit(self.store)

    # -- chain migration -------------------------------------------------------------------------
    def _migrate_chain(self) -> None:
        """A database written before the chain: add the hash columns and chain its rows once, in id
        order, recorded as an 'audit_chain_migrated' row."""
        migrate_chain(self.store, self._clock, SYSTEM_ROLE)


_DUMMY_SALT = os.urandom(16)


def _login_key(name: Any) -> str:
    return str(name)[:80]
