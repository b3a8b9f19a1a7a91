"""The virtual cell's demo users (--sim only, on a result store without users)."""
from __future__ import annotations

from inspector.access import AccessControl

DEMO_USERS = (("integrator", "integrator", "3333"), ("operator", "operator", "1111"), ("qa", "qa", "2222"))


def seed_demo_users(access: AccessControl) -> bool:
    """--sim only: operator/1111, qa/2222, integrator/3333 on a result store that has no user yet."""
    if access.has_users():
        return False
    name, role, pin = DEMO_USERS[0]
    access.add_user(name, role, pin, by=access.system_session("commissioning", "demo users (--sim)"))
    integrator = access.login(name, pin)
    for name, role, pin in DEMO_USERS[1:]:
        access.add_user(name, role, pin, by=integrator)
    access.logout(integrator)
    return True
