"""A virtual cell with the station's real cycle engine, wired for benchmarking: either recording
cameras (rendering) or replay cameras (recorded frames), and an optional result store subclass."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from hardware.sim.cell import VirtualCell

from ..cycle import InspectionCycle
from ..devices import Devices, open_devices
from ..inference.classifier import Classifier
from ..inference.detector import Detector
from ..recipe import Recipe
from ..results.records import PartRecord
from ..results.sqlite_store import ResultStore
from ..station_config import StationConfig
from .frames import FrameTape, RecordingCamera, ReplayCamera, pose_tuple


class TimedStore(ResultStore):
    """The SQLite result store, timing each `write` (one transaction per part, committed)."""

    def __init__(self, location):
        super().__init__(location)
        self.write_s: list[float] = []

    def write(self, record: PartRecord) -> int:
        t = time.perf_counter()
        row = super().write(record)
        self.write_s.append(time.perf_counter() - t)
        return row


@dataclass
class PoseLog:
    """The poses the cycle commands, in order (the machine-model bounds are computed from them):
    wraps `move_to` of this bench's own driver instance."""

    poses: list[tuple[float, ...]] = field(default_factory=list)

    def install(self, motion) -> None:
        move_to = motion.move_to

        def logged_move_to(pose, *args, **kwargs):
            self.poses.append(pose_tuple(pose))
            return move_to(pose, *args, **kwargs)

        motion.move_to = logged_move_to

    def take(self) -> list[tuple[float, ...]]:
        poses, self.poses = self.poses, []
        return poses


@dataclass
class BenchCell:
    cell: VirtualCell
    devices: Devices
    cycle: InspectionCycle
    store: TimedStore
    cameras: dict
    poses: PoseLog

    def start_part(self, key: str) -> None:
        for camera in self.cameras.values():
            camera.start_part(key)


@contextmanager
def bench_cell(recipe: Recipe, detector: Detector, classifier: Classifier, db: Path, *, speed_factor: float,
               tape: FrameTape, mode: str) -> Iterator[BenchCell]:
    """mode 'record': rendering cameras that keep frames on `tape`; 'replay': cameras that replay it."""
    db = Path(db)
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    with VirtualCell(speed_factor=speed_factor) as cell, TimedStore(db) as store:
        station = StationConfig.from_dict(cell.station_config_dict(), source="virtual cell")
        devices = open_devices(station, virtual_cell=cell)
        cameras: dict = {}
        for role, inner in list(devices.cameras.items()):
            if mode == "record":
                cameras[role] = RecordingCamera(inner, tape)
            else:
                cameras[role] = ReplayCamera(role, tape, speed_factor=speed_factor, fallback=inner,
                                             pose_source=inner.pose_source)
            cameras[role].configure(exposure_us=inner.settings.exposure_us, gain=inner.settings.gain)
            devices.cameras[role] = cameras[role]
        poses = PoseLog()
        poses.install(devices.motion)
        cycle = InspectionCycle(station, devices, recipe, detector, classifier, store)
        try:
            cycle.home()
            poses.take()  # homing is not part of any part's plan
            yield BenchCell(cell, devices, cycle, store, cameras, poses)
        finally:
            cycle.close()
            devices.close()
