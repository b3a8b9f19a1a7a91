"""The recipe's master parts (golden samples): a known-good part and known-defective ones, each with the
verdict and the defect classes the station must find on it. `inspector.golden` runs the check."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .schema import Section

MAX_MASTERS = 20
MASTER_VERDICTS = ("PASS", "FAIL")


@dataclass(frozen=True)
class Master:
    name: str
    serial: str  # the serial marked on the master (what the QA engineer loads)
    expect: str  # PASS | FAIL
    defects: tuple[str, ...] = ()  # defect classes the station must call on it (expect FAIL)
    sim_seed: int | None = None  # on the virtual cell: the part this master is

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "serial": self.serial, "expect": self.expect,
                **({"defects": list(self.defects)} if self.defects else {}),
                **({"sim_seed": self.sim_seed} if self.sim_seed is not None else {})}


def parse_masters(top: Section, defect_classes: Iterable[str]) -> tuple[Master, ...]:
    """The recipe's `masters` list (absent: none). A good master must expect no defects; a defective one
    at least one class; names and serials are unique."""
    classes = tuple(defect_classes)
    masters: list[Master] = []
    for index, raw in enumerate(top.get_list("masters", MAX_MASTERS, [])):
        m = Section(raw, top.source, f"masters[{index}]")
        name = m.get("name", str)
        if not name.strip() or len(name) > 100:
            raise m.error("name", f"expected a name of 1–100 characters, got {name[:40]!r}")
        serial = m.get("serial", str)
        if not serial.strip() or len(serial) > 100 or any(ord(c) < 32 for c in serial):
            raise m.error("serial", f"expected a serial of 1–100 printable characters, got {serial[:40]!r}")
        expect = m.get("expect", str, choices=MASTER_VERDICTS)
        defects = tuple(m.get_list("defects", 10, []))
        for d in defects:
            if d not in classes:
                raise m.error("defects", f"expected defect classes among {', '.join(classes)}, got {d!r}")
        if expect == "PASS" and defects:
            raise m.error("defects", "a master expected to PASS carries no defects")
        if expect == "FAIL" and not defects:
            raise m.error("defects", "a master expected to FAIL names the defect class(es) it must be failed for")
        seed = m.get("sim_seed", int, None, min_value=0, max_value=2 ** 31)
        if any(other.name == name or other.serial == serial for other in masters):
            raise m.error("name", f"master {name!r} / serial {serial!r} named twice")
        masters.append(Master(name, serial, expect, defects, seed))
        m.reject_unknown()
    return tuple(masters)
