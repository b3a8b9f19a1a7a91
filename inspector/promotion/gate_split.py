"""Review labels split once, by part, into a train side and a gate side.

The gate side is what the promotion gate scores a candidate on; it never reaches a retraining job
(`keep_train_side` filters the exported labels), so the gate cannot be fooled by a model that has
seen its parts. Each part (its serial) gets a side from a hash of the serial — independent of the
order parts arrive, `GATE_SHARE` of them on the gate side — and the side is stored in the result
store the first time the part is seen, so a later change of the rule never moves a part across.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol, Sequence, TypeVar

from ..results.sqlite_store import ResultStore

TRAIN, GATE = "train", "gate"
GATE_SHARE = 0.30

SPLIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_split (
    serial TEXT PRIMARY KEY,
    side TEXT NOT NULL CHECK (side IN ('train', 'gate')),
    decided_at {real} NOT NULL,
    rule TEXT NOT NULL
);
"""


class HasSerial(Protocol):
    serial: str


P = TypeVar("P", bound=HasSerial)


@dataclass(frozen=True)
class SplitRule:
    """side = gate when sha256(salt:serial), read as a fraction of 2^64, is below `gate_share`."""
    gate_share: float = GATE_SHARE
    salt: str = "review-split/1"

    def __post_init__(self) -> None:
        if not 0.0 < self.gate_share < 1.0:
            raise ValueError(f"gate share must lie strictly between 0 and 1, got {self.gate_share!r}")

    def side(self, serial: str) -> str:
        digest = hashlib.sha256(f"{self.salt}:{serial}".encode("utf-8")).digest()
        return GATE if int.from_bytes(digest[:8], "big") / 2.0 ** 64 < self.gate_share else TRAIN

    def describe(self) -> str:
        return f"{self.salt}: {100 * self.gate_share:g} % of parts (by serial hash) on the gate side"


class GateSplit:
    """The stored split of reviewed parts. Decide-once: `sides` stores a side for every serial it has
    not seen before, then answers from the store."""

    def __init__(self, store: ResultStore, rule: SplitRule = SplitRule()):
        self.store, self.rule = store, rule
        self._known: dict[str, str] = {}  # sides already read or stored: a side never changes
        store.create_tables(SPLIT_SCHEMA)

    def sides(self, serials: Iterable[str]) -> dict[str, str]:
        asked = {str(s) for s in serials}
        wanted = sorted(asked - set(self._known))
        if wanted:
            self._known.update(self._decide(wanted))
        return {s: self._known[s] for s in asked}

    def _decide(self, wanted: list[str]) -> dict[str, str]:
        """Read the stored sides of `wanted`, store a side for each serial not seen before."""
        found: dict[str, str] = {}
        with self.store.transaction() as ex:
            for chunk in _chunks(wanted, 500):
                found.update(_select(ex, chunk))
            new = [s for s in wanted if s not in found]
            now, rule = time.time(), self.rule.describe()
            for serial in new:
                ex("INSERT INTO review_split (serial, side, decided_at, rule) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (serial) DO NOTHING", (serial, self.rule.side(serial), now, rule))
            for chunk in _chunks(new, 500):  # read back: another client may have decided first
                found.update(_select(ex, chunk))
        return found

    def side(self, serial: str) -> str:
        return self.sides([serial])[str(serial)]

    def is_train(self, serial: str) -> bool:
        """For exports that feed retraining (e.g. `write_coco(..., keep_serial=split.is_train)`)."""
        return self.side(serial) == TRAIN

    def split(self, parts: Sequence[P]) -> tuple[list[P], list[P]]:
        """(train side, gate side) of `parts`, each in the given order."""
        sides = self.sides(p.serial for p in parts)
        return ([p for p in parts if sides[str(p.serial)] == TRAIN], [p for p in parts if sides[str(p.serial)] == GATE])

    def stored(self) -> dict[str, str]:
        """Every decided serial → side."""
        with self.store.reading() as ex:
            return {r[0]: r[1] for r in ex("SELECT serial, side FROM review_split ORDER BY serial").fetchall()}


def keep_train_side(coco: dict[str, Any], split: GateSplit) -> tuple[dict[str, Any], int]:
    """A COCO export of review labels restricted to train-side parts (by each image's `serial`
    attribute; an image without one is left out: it cannot be shown not to be a gate part).
    Returns (the restricted document, images left out)."""
    images = coco.get("images", [])
    serials = [im.get("attributes", {}).get("serial") for im in images]
    sides = split.sides(s for s in serials if s)
    keep = [im for im, s in zip(images, serials) if s and sides[str(s)] == TRAIN]
    ids = {im["id"] for im in keep}
    doc = {**coco, "images": keep, "annotations": [a for a in coco.get("annotations", []) if a["image_id"] in ids],
           "info": {**coco.get("info", {}), "review_split": f"train side only ({split.rule.describe()})"}}
    return doc, len(images) - len(keep)


def _select(ex: Any, serials: Sequence[str]) -> dict[str, str]:
    marks = ",".join("?" * len(serials))
    return {r[0]: r[1] for r in ex(f"SELECT serial, side FROM review_split WHERE serial IN ({marks})",
                                   list(serials)).fetchall()}


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
