"""Part-seed ranges per split, and data-set fingerprints.

Every part the virtual cell renders is fixed by its seed, so a split *is* a seed range. The ranges
below are disjoint by construction (checked at import): a part seen in training can never turn up
in validation or in the held-out lot. A fingerprint hashes what a set actually contains (image
bytes and annotations), so a model card can say exactly which data it came from.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class SeedRange:
    split: str
    start: int
    capacity: int  # seeds reserved for this split; a set uses the first `count` of them

    def seeds(self, count: int, offset: int = 0) -> range:
        if offset < 0 or count < 0 or offset + count > self.capacity:
            raise ValueError(f"split {self.split!r} holds seeds {self.start}..{self.start + self.capacity - 1}; "
                             f"asked for {count} from offset {offset}")
        return range(self.start + offset, self.start + offset + count)


SPLITS: dict[str, SeedRange] = {
    "train": SeedRange("train", 100_000, 100_000),
    "val": SeedRange("val", 200_000, 100_000),
    "heldout": SeedRange("heldout", 300_000, 100_000),
    "smoke": SeedRange("smoke", 900_000, 1_000),  # tiny sets for CI
}


def _check_disjoint(ranges: Iterable[SeedRange]) -> None:
    spans = sorted((r.start, r.start + r.capacity, r.split) for r in ranges)
    for (a0, a1, a), (b0, b1, b) in zip(spans, spans[1:]):
        if b0 < a1:
            raise AssertionError(f"seed ranges of {a!r} and {b!r} overlap")


_check_disjoint(SPLITS.values())


def seeds_for(split: str, count: int, offset: int = 0) -> range:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}, expected one of {', '.join(SPLITS)}")
    return SPLITS[split].seeds(count, offset)


def fingerprint_files(root: Path, files: Iterable[str], extra: dict | None = None) -> str:
    """sha256 over (relative name, content hash) of each file in sorted order, plus `extra` as JSON."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(hashlib.sha256((root / name).read_bytes()).digest())
    if extra:
        digest.update(json.dumps(extra, sort_keys=True).encode())
    return "sha256:" + digest.hexdigest()[:20]


def combined_fingerprint(fingerprints: Iterable[str]) -> str:
    digest = hashlib.sha256("|".join(sorted(fingerprints)).encode())
    return "sha256:" + digest.hexdigest()[:20]
