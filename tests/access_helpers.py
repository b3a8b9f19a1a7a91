"""Real users and sessions for tests: sessions come only from `AccessControl.login`."""
from inspector.access import AccessControl, Session


def staff(access: AccessControl, *users: tuple[str, str, str]) -> dict[str, Session]:
    """Add `users` (name, role, PIN) — the first, an integrator, by a commissioning session, the
    others by that integrator — and return a logged-in session for each, by name."""
    (first, role, pin), *rest = users
    assert role == "integrator", "the first user of a station is an integrator"
    access.add_user(first, role, pin, by=access.system_session("commissioning", "test station"))
    sessions = {first: access.login(first, pin)}
    for name, role, pin in rest:
        access.add_user(name, role, pin, by=sessions[first])
        sessions[name] = access.login(name, pin)
    return sessions
