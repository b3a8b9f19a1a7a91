"""Access that holds (issue 14, part 3), each point as a hostile tester would try it, on a real SQLite
file (and one PostgreSQL server for the audit chain):

- sessions come only from `AccessControl.login`: a `Session` built by hand (no token, a made-up
  token, a copied name and role), an altered, logged-out, expired or foreign session, and no session
  at all are refused by every changing core call, with AccessDenied naming the action, and change nothing;
- five wrong PINs lock a name (growing delay, or until an integrator unlocks it), audited; logins and
  logouts are audited; an unknown name costs what a known one costs;
- the audit log is a hash chain: `inspector audit verify` finds an edited, a deleted and a re-hashed
  row, and an old database is chained once, recorded as such;
- the CSV export never writes a cell a spreadsheet would run as a formula.
"""
import csv
import dataclasses
import hashlib
import json
import secrets
import sqlite3
import statistics
import time
from pathlib import Path

import pytest

import inspector.access as access_module
from inspector.access import (LOCK_AFTER, LOCK_BASE_S, AccessControl, AccessDenied, Session, verify_audit)
from inspector.calibration import write_calibration
from inspector.cli import main as cli
from inspector.promotion import promote, rollback
from inspector.recipe import Recipe
from inspector.recipe_edit import save_recipe, set_class_policy
from inspector.results.records import PartRecord
from inspector.results.sqlite_store import ResultStore
from inspector.review import ReviewQueue
from tests.access_helpers import staff
from tests.test_result_store_postgres import pg_url  # noqa: F401 (the throw-away PostgreSQL server fixture)
from tests.test_review import add, defect, part

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "housing-40x30.recipe.json"
USERS = (("ina", "integrator", "4711"), ("quinn", "qa", "2468"), ("otto", "operator", "1357"))


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def cheap_pins(monkeypatch):
    """The PIN hash's cost is not what most tests here are about; the timing test uses the real one."""
    monkeypatch.setattr(access_module, "hash_pin", lambda pin, salt: hashlib.sha256(salt + pin.encode()).hexdigest())


@pytest.fixture
def station(tmp_path, monkeypatch):
    cheap_pins(monkeypatch)
    clock = Clock()
    store = ResultStore(tmp_path / "results.db")
    access = AccessControl(store, clock=clock)
    sessions = staff(access, *USERS)
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    data["recipe"]["version"] = 1
    recipe_file = tmp_path / "housing.recipe.json"
    recipe_file.write_text(json.dumps(data, indent=2), encoding="utf-8")
    queue = ReviewQueue(store, export_root=tmp_path / "exports", kinds=("scratch", "dent", "burr", "stain"))
    row, (item,) = add(store, queue, part(tmp_path / "archive", 1, "FAIL", [defect()]))
    found = {"store": store, "access": access, "clock": clock, "queue": queue, "row": row, "item": item,
             "recipe": recipe_file, "tmp": tmp_path, **sessions}
    yield found
    if "closing" in found:
        found["closing"].close()
    store.close()


def audit_rows(store) -> int:
    with store.reading() as execute:
        return execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]


# -- every changing core call refuses a session it did not issue ------------------------------------------
def _save_recipe(s, who):
    old = Recipe.load(s["recipe"])
    return save_recipe(who, old, set_class_policy(old, "dent", detect_threshold=0.5), s["recipe"], s["access"], "x")


CALLS = {  # name → (call(station, session), the action named in the refusal, the role it needs)
    "save_recipe": (_save_recipe, "edit recipe", "ina"),
    "Recipe.save": (lambda s, who: Recipe.load(s["recipe"]).save(s["tmp"] / "copy.json", who, s["access"]),
                    "edit recipe", "ina"),
    "review.confirm": (lambda s, who: s["queue"].confirm(s["item"], 0, who), "review", "quinn"),
    "review.reject": (lambda s, who: s["queue"].reject(s["item"], 0, who), "review", "quinn"),
    "review.change_class": (lambda s, who: s["queue"].change_class(s["item"], 0, "dent", who), "review", "quinn"),
    "review.add_box": (lambda s, who: s["queue"].add_box(s["item"], "fine_00_top", (1, 1, 9, 9), "dent", who),
                       "review", "quinn"),
    "review.note": (lambda s, who: s["queue"].note(s["item"], "looked at it", who), "review", "quinn"),
    "review.close": (lambda s, who: s["queue"].close(s["item"], who), "review", "quinn"),
    "review.override": (lambda s, who: s["queue"].add_override(s["row"], who, "PASS", "wiped"), "override", "otto"),
    "review.export": (lambda s, who: s["queue"].for_session(who).export_coco(s["tmp"] / "coco"), "export labels",
                      "quinn"),
    "promote": (lambda s, who: promote(who, s["access"], s["recipe"], None, recipe_path=s["recipe"], reason="x"),
                "promote model", "quinn"),
    "rollback": (lambda s, who: rollback(who, s["access"], s["recipe"], "x"), "promote model", "quinn"),
    "add_user": (lambda s, who: s["access"].add_user("eve", "integrator", "0000", by=who), "manage users", "ina"),
    "unlock_user": (lambda s, who: s["access"].unlock_user("otto", by=who), "manage users", "ina"),
    "audit.record": (lambda s, who: s["access"].record(who, "edit_recipe", "recipe:x", 1, 2), "edit recipe", "ina"),
    "calibration": (lambda s, who: write_calibration(who, s["tmp"] / "station.toml", None, s["access"]),
                    "calibrate", "ina"),
}


def _forged(s, owner):
    real = s[owner]
    other = s["otto"] if owner != "otto" else s["quinn"]  # someone else's real session, altered
    return {
        "missing": None,
        "a name": owner,
        "built by hand": Session(real.user, real.role),
        "made-up token": Session(real.user, real.role, secrets.token_bytes(32)),
        "promoted by replace": dataclasses.replace(other, role=real.role),
        "renamed by replace": dataclasses.replace(other, user=real.user, role=real.role),
    }


FORGERIES = ("missing", "a name", "built by hand", "made-up token", "promoted by replace", "renamed by replace",
             "logged out", "expired", "another station's")


@pytest.mark.parametrize("forgery", FORGERIES)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_changing_call_refuses_a_session_it_did_not_issue(station, name, forgery, tmp_path):
    call, action, owner = CALLS[name]
    s = station
    if forgery == "logged out":
        who = s["access"].login(owner, dict((u, p) for u, _, p in USERS)[owner])
        assert s["access"].logout(who)
    elif forgery == "expired":
        who = s["access"].login(owner, dict((u, p) for u, _, p in USERS)[owner])
        s["clock"].now += s["access"].session_ttl_s + 1
    elif forgery == "another station's":  # a real login, on a database the hostile tester made up
        other_store = ResultStore(tmp_path / "elsewhere.db")
        s["closing"] = other_store
        who = staff(AccessControl(other_store), ("ina", "integrator", "4711"), ("quinn", "qa", "2468"),
                    ("otto", "operator", "1357"))[owner]
    else:
        who = _forged(s, owner)[forgery]
    recipe_before = s["recipe"].read_bytes()
    rows_before, labels_before = audit_rows(s["store"]), len(s["queue"].labels())
    with pytest.raises(AccessDenied) as refused:
        call(s, who)
    message = str(refused.value)
    assert action in message, message
    if forgery != "missing":
        assert "refused" in message or "needs an integrator's session" in message, message
    assert s["recipe"].read_bytes() == recipe_before and not (s["tmp"] / "copy.json").exists()
    assert len(s["queue"].labels()) == labels_before and not (s["tmp"] / "coco").exists()
    assert audit_rows(s["store"]) == rows_before and [n for n, _ in s["access"].users()] == ["ina", "otto", "quinn"]


@pytest.mark.parametrize("name", sorted(set(CALLS) - {"promote", "rollback", "calibration", "unlock_user"}))
def test_the_same_calls_work_with_a_real_session(station, name):
    call, _, owner = CALLS[name]
    call(station, station[owner])  # the negative test above refuses for the session, not for the call


def test_a_role_without_the_permission_is_still_refused(station):
    with pytest.raises(AccessDenied, match="otto \\(operator\\) may not review; that needs the role qa"):
        station["queue"].confirm(station["item"], 0, station["otto"])
    with pytest.raises(AccessDenied, match="quinn \\(qa\\) may not edit recipe; that needs the role integrator"):
        _save_recipe(station, station["quinn"])
    with pytest.raises(AccessDenied, match="quinn \\(qa\\) may not add users"):
        station["access"].add_user("eve", "qa", "0000", by=station["quinn"])


def test_a_system_session_is_audited_and_adds_only_the_first_user(station):
    access = station["access"]
    system = access.system_session("commissioning", "re-commissioning attempt")
    with pytest.raises(AccessDenied, match="a system session adds only the first user"):
        access.add_user("eve", "integrator", "0000", by=system)
    (entry,) = access.audit(action="system_session", limit=1)
    assert (entry.who, entry.role, entry.reason) == ("system:commissioning", "system", "re-commissioning attempt")
    with pytest.raises(AccessDenied, match="system:evaluation may not promote model"):
        access.check(access.system_session("evaluation"), "promote_model")
    with pytest.raises(ValueError, match="unknown purpose 'backdoor'"):
        access.system_session("backdoor")
    station["clock"].now += 301  # short-lived
    with pytest.raises(AccessDenied, match="expired"):
        access.check(system, "manage_users")


# -- lockout, login and logout audit ---------------------------------------------------------------------
def test_five_wrong_pins_lock_the_name_growing_until_an_integrator_unlocks(station):
    access, clock = station["access"], station["clock"]
    for attempt in range(1, LOCK_AFTER):
        with pytest.raises(AccessDenied, match="^wrong user name or PIN for 'otto'$"):
            access.login("otto", f"{attempt:04d}")
    with pytest.raises(AccessDenied, match=f"locked for {LOCK_BASE_S:.0f} s after {LOCK_AFTER} wrong PINs"):
        access.login("otto", "0005")
    with pytest.raises(AccessDenied, match="'otto' is locked after 5 wrong PINs; try again in 60 s"):
        access.login("otto", "1357")  # the right PIN does not open a locked name
    assert access.login_state("otto") == (5, clock.now + LOCK_BASE_S)
    clock.now += LOCK_BASE_S + 1
    with pytest.raises(AccessDenied, match="locked for 120 s after 6 wrong PINs"):  # one more try, a longer lock
        access.login("otto", "0006")
    clock.now += 121
    with pytest.raises(AccessDenied, match="locked for 240 s after 7 wrong PINs"):
        access.login("otto", "0007")
    access.unlock_user("otto", by=station["ina"], reason="otto at the desk with his badge")
    assert access.login("otto", "1357") == Session("otto", "operator") and access.login_state("otto") == (0, 0.0)
    actions = [e.action for e in reversed(access.audit(target="user:otto", limit=50))]
    assert actions[-13:] == ["login_failed"] * 5 + ["lockout", "login_refused", "login_failed", "lockout",
                                                      "login_failed", "lockout", "unlock_user", "login"]
    lockout = access.audit(target="user:otto", action="lockout", limit=1)[0]
    assert lockout.new["failures"] == 7 and lockout.new["locked_s"] == 240
    unlock = access.audit(target="user:otto", action="unlock_user", limit=1)[0]
    assert (unlock.who, unlock.old["failures"], unlock.reason) == ("ina", 7, "otto at the desk with his badge")
    assert verify_audit(station["store"]).ok


def test_a_brute_force_gets_nowhere_and_the_right_pin_after_it_is_refused(station):
    access = station["access"]
    refused = 0
    for pin in range(300):
        with pytest.raises(AccessDenied):
            access.login("quinn", f"{pin:04d}" if f"{pin:04d}" != "2468" else "9999")
        refused += 1
    with pytest.raises(AccessDenied, match="locked"):
        access.login("quinn", "2468")
    failures, _ = access.login_state("quinn")
    assert refused == 300 and failures == LOCK_AFTER  # only the first five were even tried


def test_an_unknown_name_is_locked_and_audited_like_a_known_one(station):
    access = station["access"]
    for _ in range(LOCK_AFTER):
        with pytest.raises(AccessDenied, match="^wrong user name or PIN for 'mallory'"):
            access.login("mallory", "1234")
    with pytest.raises(AccessDenied, match="'mallory' is locked after 5 wrong PINs"):
        access.login("mallory", "1234")
    assert [e.action for e in access.audit(target="user:mallory", limit=3)] == \
        ["login_refused", "lockout", "login_failed"]


def test_logins_and_logouts_are_audited_and_a_logged_out_session_is_dead(station):
    access = station["access"]
    session = access.login("quinn", "2468")
    assert access.logout(session) and not access.logout(session)
    assert not access.logout(Session("quinn", "qa"))  # nothing to end
    entries = access.audit(target="user:quinn", limit=2)
    assert [(e.action, e.who, e.role) for e in entries] == [("logout", "quinn", "qa"), ("login", "quinn", "qa")]
    with pytest.raises(AccessDenied, match="review refused: the session of 'quinn' was not issued by a login"):
        station["queue"].confirm(station["item"], 0, session)


def test_an_unknown_user_costs_what_a_known_user_costs(tmp_path):
    """The real scrypt: an unknown name must not answer faster than a known one with a wrong PIN (it
    used to: 0.16 ms vs 61 ms). Medians of a few calls each; a security property, not a speed figure."""
    with ResultStore(tmp_path / "results.db") as store:
        access = AccessControl(store)
        access.add_user("ina", "integrator", "4711", by=access.system_session("commissioning"))

        def median_s(name, pin, n=5):
            spent = []
            for _ in range(n):
                start = time.perf_counter()
                try:
                    access.login(name, pin)
                except AccessDenied:
                    pass
                spent.append(time.perf_counter() - start)
            return statistics.median(spent)

        known_wrong = median_s("ina", "0000")
        unknown = median_s("nobody", "0000")
    ratio = max(known_wrong, unknown) / min(known_wrong, unknown)
    assert ratio < 3, f"known name, wrong PIN {known_wrong * 1e3:.1f} ms; unknown name {unknown * 1e3:.1f} ms"
    assert unknown > 0.005  # the scrypt work is really done (about 50 ms here)


# -- the audit chain ----------------------------------------------------------------------------------
def _raw(db, sql, args=()):
    with sqlite3.connect(db) as raw:
        raw.execute(sql, args)


def test_audit_verify_finds_an_edited_row(station, capsys):
    db = station["tmp"] / "results.db"
    access = station["access"]
    access.record(station["ina"], "edit_recipe", "recipe:housing", {"t": 0.2}, {"t": 0.3}, reason="fewer false calls")
    rows = audit_rows(station["store"])
    assert cli(["audit", "verify", "--db", str(db)]) == 0
    assert capsys.readouterr().out.strip() == f"audit log intact: {rows} rows"
    _raw(db, "UPDATE audit_log SET new_value = ? WHERE action = 'edit_recipe'", ('{"t": 0.9}',))
    check = verify_audit(station["store"])
    edited = rows  # the edit_recipe row is the newest
    assert not check.ok and check.broken_id == edited
    assert f"row {edited} (edit_recipe on recipe:housing by ina)" in check.problem and "edited" in check.problem
    assert cli(["audit", "verify", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert f"first broken row: {edited}" in err and "does not match its hash" in err


def test_audit_verify_finds_a_deleted_row(station, capsys):
    db = station["tmp"] / "results.db"
    store = station["store"]
    for i in range(3):
        station["access"].record(station["ina"], "edit_recipe", f"recipe:r{i}", i, i + 1, reason="x")
    _raw(db, "DELETE FROM audit_log WHERE id = 3")
    check = verify_audit(store)
    assert (check.ok, check.broken_id, check.rows) == (False, 4, 2)
    assert "row(s) 3–3 deleted" in check.problem
    assert cli(["audit", "verify", "--db", str(db)]) == 1 and "first broken row: 4" in capsys.readouterr().err


def test_audit_verify_finds_a_rehashed_row_and_a_deleted_newest_row(station):
    db = station["tmp"] / "results.db"
    store = station["store"]
    station["access"].record(station["ina"], "edit_recipe", "recipe:a", 1, 2, reason="x")
    station["access"].record(station["ina"], "edit_recipe", "recipe:b", 1, 2, reason="x")
    rows = audit_rows(store)
    with sqlite3.connect(db) as raw:  # edit a row and recompute its own hash: the next row's link breaks
        values = list(raw.execute(f"SELECT {', '.join(access_module.AUDIT_COLUMNS)}, prev_hash FROM audit_log "
                                  "WHERE id = 2").fetchone())
        values[8] = "nothing to see"
        raw.execute("UPDATE audit_log SET reason = ?, row_hash = ? WHERE id = 2",
                    (values[8], access_module.chain_hash(values[9], tuple(values[:9]))))
    check = verify_audit(store)
    assert check.broken_id == 3 and "link to the previous row" in check.problem
    fresh = station["tmp"] / "fresh.db"
    with ResultStore(fresh) as other:
        access = AccessControl(other)
        staff(access, ("ina", "integrator", "4711"))
        n = audit_rows(other)
        _raw(fresh, "DELETE FROM audit_log WHERE id = ?", (n,))
        check = verify_audit(other)
        assert not check.ok and f"the chain ends at row {n - 1}, but its head records row {n}" in check.problem
    assert rows > 3


def test_an_old_audit_log_is_chained_once_and_recorded(tmp_path, capsys):
    db = tmp_path / "old.db"
    with ResultStore(db):
        pass
    with sqlite3.connect(db) as raw:  # the table as it was before the chain, with two rows
        raw.execute("CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at REAL NOT NULL, who TEXT NOT NULL, "
                    "role TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, old_value TEXT, "
                    "new_value TEXT, reason TEXT)")
        raw.execute("INSERT INTO audit_log (at, who, role, action, target) VALUES (1.5, 'ina', 'integrator', "
                    "'add_user', 'user:otto')")
        raw.execute("INSERT INTO audit_log (at, who, role, action, target, reason) VALUES (2.5, 'ina', 'integrator', "
                    "'edit_recipe', 'recipe:x', 'old')")
    with ResultStore(db) as store:
        assert cli(["audit", "verify", "--db", str(db)]) == 1
        assert "no hash chain" in capsys.readouterr().err
        access = AccessControl(store)
        (entry,) = access.audit(action="audit_chain_migrated")
        assert entry.new == {"rows_chained": 2} and entry.who == "system:migration"
        assert verify_audit(store).message() == "audit log intact: 3 rows"
        AccessControl(store)  # a second open chains nothing again
        assert len(access.audit(action="audit_chain_migrated")) == 1
        _raw(db, "UPDATE audit_log SET who = 'mallory' WHERE id = 1")
        assert verify_audit(store).broken_id == 1


def test_the_audit_chain_on_postgresql(pg_url, tmp_path, monkeypatch):
    cheap_pins(monkeypatch)
    monkeypatch.setenv("INSPECTOR_JOURNAL_DIR", str(tmp_path / "journals"))
    with ResultStore(pg_url) as store:
        with store.transaction() as execute:
            execute("DROP TABLE IF EXISTS audit_log, users, login_state")
            execute("DELETE FROM meta WHERE key = 'audit_head'")
        access = AccessControl(store)
        ina = staff(access, ("ina", "integrator", "4711"), ("otto", "operator", "1357"))["ina"]
        access.record(ina, "edit_recipe", "recipe:housing", {"t": 0.2}, {"t": 0.3}, reason="x")
        with pytest.raises(AccessDenied):
            access.login("otto", "0000")
        check = verify_audit(store)
        assert check.ok and check.rows == audit_rows(store) >= 7
        with store.transaction() as execute:
            execute("UPDATE audit_log SET reason = 'y' WHERE action = 'edit_recipe'")
        broken = verify_audit(store)
        assert not broken.ok and "edited" in broken.problem
        with store.transaction() as execute:
            execute("UPDATE audit_log SET reason = 'x' WHERE action = 'edit_recipe'")
            execute("DELETE FROM audit_log WHERE id = 2")
        broken = verify_audit(store)
        assert broken.broken_id == 3 and "deleted" in broken.problem


# -- CSV export ---------------------------------------------------------------------------------------
def test_csv_export_escapes_formulas(tmp_path):
    hostile = {"part_id": "=cmd|' /C calc'!A0", "serial": "+SUM(A1:A9)", "station": "@cell", "reason": "-2+3",
               "recipe_id": "\tstart", "provider": "\rCPU"}
    record = PartRecord(started_at=1.0, finished_at=2.0, recipe_version=1, recipe_hash="sha256:x",
                        model_versions={"detector": "1"}, verdict="FAIL", defects=(), timings_s={"total": 1.0},
                        image_paths=(), extra={}, **hostile)
    with ResultStore(tmp_path / "r.db") as store:
        row = store.write(record)
        plain = dataclasses.replace(record, part_id="P-1", serial="SN1", station="cell-01", reason="scratch",
                                    recipe_id="housing", provider="CPU")
        store.export_csv(tmp_path / "out.csv", [(row, record), (row + 1, plain)])
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as handle:
        header, first, second = list(csv.reader(handle))
    cells = dict(zip(header, first))
    for column, value in hostile.items():
        column = {"part_id": "part_id"}.get(column, column)
        assert cells[column] == "'" + value, column
    assert dict(zip(header, second))["part_id"] == "P-1" and dict(zip(header, second))["serial"] == "SN1"
    assert cells["row"] == str(row) and cells["total_s"] == "1.000"
