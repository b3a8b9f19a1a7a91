"""Roles, hashed PINs and the audit log, in a real SQLite file."""
import sqlite3

import pytest

from inspector.access import AccessControl, AccessDenied, Session
from inspector.results.sqlite_store import ResultStore


@pytest.fixture
def access(tmp_path):
    with ResultStore(tmp_path / "results.db") as store:
        yield AccessControl(store), tmp_path / "results.db"


def test_commissioning_login_and_pins_are_hashed(access):
    control, db = access
    assert not control.has_users()
    with pytest.raises(AccessDenied, match="adding user 'ina' needs an integrator's session"):
        control.add_user("ina", "integrator", "4711")  # even the first user: no session, no user
    commissioning = control.system_session("commissioning")
    control.add_user("ina", "integrator", "4711", by=commissioning)
    with pytest.raises(AccessDenied, match="adding user 'otto' needs an integrator's session"):
        control.add_user("otto", "operator", "1234")
    with pytest.raises(AccessDenied, match="a system session adds only the first user"):
        control.add_user("otto", "operator", "1234", by=commissioning)
    ina = control.login("ina", "4711")
    control.add_user("otto", "operator", "1234", by=ina)
    control.add_user("quinn", "qa", "2468", by=ina)
    assert control.users() == [("ina", "integrator"), ("otto", "operator"), ("quinn", "qa")]
    with pytest.raises(AccessDenied, match="otto \\(operator\\) may not add users"):
        control.add_user("eve", "integrator", "0000", by=control.login("otto", "1234"))
    with pytest.raises(AccessDenied, match="wrong user name or PIN for 'otto'"):
        control.login("otto", "9999")
    with pytest.raises(AccessDenied, match="wrong user name or PIN for 'nobody'"):
        control.login("nobody", "1234")
    raw = sqlite3.connect(db).execute("SELECT pin_hash, salt FROM users WHERE name='otto'").fetchone()
    assert "1234" not in raw[0] and len(raw[0]) == 64 and len(raw[1]) == 32


@pytest.mark.parametrize("name,role,pin,message", [
    ("x", "admin", "1234", "unknown role 'admin'"),
    ("x", "qa", "12", "at least 4 digits"),
    ("x", "qa", "12ab", "at least 4 digits"),
    ("", "qa", "1234", "expected 1–40 characters"),
])
def test_bad_user_input_is_named(access, name, role, pin, message):
    control, _ = access
    with pytest.raises(ValueError, match=message):
        control.add_user(name, role, pin, by=control.system_session("commissioning"))


def test_roles_are_enforced_and_changes_audited(access):
    control, _ = access
    control.add_user("ina", "integrator", "4711", by=control.system_session("commissioning"))
    integrator = control.login("ina", "4711")
    control.add_user("otto", "operator", "1234", by=integrator)
    control.add_user("quinn", "qa", "2468", by=integrator)
    operator, qa = control.login("otto", "1234"), control.login("quinn", "2468")
    with pytest.raises(AccessDenied, match="edit recipe refused: the session of 'ina' was not issued by a login"):
        control.record(Session("ina", "integrator"), "edit_recipe", "recipe:housing", {"t": 0.2}, {"t": 0.3})
    with pytest.raises(AccessDenied, match="otto \\(operator\\) may not edit recipe; that needs the role integrator"):
        control.record(operator, "edit_recipe", "recipe:housing", {"t": 0.2}, {"t": 0.3})
    with pytest.raises(AccessDenied, match="may not promote model; that needs the role qa"):
        control.record(integrator, "promote_model", "model:detector")
    with pytest.raises(ValueError, match="unknown action 'fly'"):
        operator.require("fly")
    control.record(integrator, "edit_recipe", "recipe:housing", {"t": 0.2}, {"t": 0.3}, reason="fewer false calls")
    control.record(qa, "promote_model", "model:detector", "1.0.0", "1.1.0", reason="gate passed")
    control.record(operator, "override", "part:SIM-1", "FAIL", "PASS", reason="dust, wiped")
    entries = control.audit(limit=3)
    assert [e.action for e in entries] == ["override", "promote_model", "edit_recipe"]
    assert entries[2].old == {"t": 0.2} and entries[2].new == {"t": 0.3} and entries[2].who == "ina"
    assert [e.action for e in control.audit(target="model:detector")] == ["promote_model"]
