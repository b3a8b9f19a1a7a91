"""The two-stage inspection cycle: views → coarse detect → physical re-imaging → classify →
verdict → record.

Each face is visited once: its coarse view (the stage moves, the lights are set during the move,
the coarse camera captures), detection, then that face's fine shots, then the next face. Faces go
in the order of the shortest path by the machine model (inspector.path_plan), a face's shots in the
shortest path from its view to the next face's. Candidates are mapped to face mm and merged as for
the whole part (the same shots whatever the order: inspector.planner); each fine shot is checked
and classified on a worker while the stage moves to the next one, its result taken in shot order
on the cycle's thread. The record orders and names the shots as the whole-part plan does
(inspector.cycle_path.record_order), so an archive replays to the same decisions.

Any fault — serial, camera, model, timeout — or a cancel ends the part as
ERROR with the reason, never PASS; the lights go off and motion is held. The record is committed
to the store before the verdict is published.

The serial comes as the station config's `[serial]` says (inspector.serials): the caller's (PLC), a
code reader's before the views, or the Data Matrix in the named view's coarse image. None to be had
is ERROR "serial not read: …"; a serial already in the store is flagged in the record
(`extra["serial_seen_before"]`: the earlier rows), not refused.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from hardware.errors import HardwareError
from hardware.lights.base import LightProgram

from .archive import ImageArchive, check_path_part
from .devices import Devices
from .events import Alarm, EventBus, Fault, PartStarted, VerdictReady
from .inference.classifier import Classifier
from .inference.detector import Detector
from .face_pass import Cancelled, FacePass, _Clock
from .plausibility import IMPLAUSIBLE, ImplausibleFrame
from .recipe import Recipe
from .results.records import DefectRecord, PartRecord
from .results.sqlite_store import ResultStore, StoreWriteError
from .review import ReviewQueue
from .serials import SerialNotRead, SerialSource
from .schema import ConfigError
from .station_config import StationConfig
from .two_stage import IncompleteInspection, TwoStage

log = logging.getLogger(__name__)


class InspectionCycle(FacePass):
    def __init__(self, station: StationConfig, devices: Devices, recipe: Recipe, detector: Detector,
                 classifier: Classifier, store: ResultStore, *, archive: ImageArchive | None = None,
                 events: EventBus | None = None, review: ReviewQueue | None = None):
        self.station, self.devices, self.recipe = station, devices, recipe
        self.detector, self.classifier, self.store = detector, classifier, store
        self.review = review if review is not None else ReviewQueue(store)
        self.review.kinds.register_known(recipe.kinds, "recipe")  # review offers the kinds this recipe rules on
        self.archive = archive
        self.events = events or EventBus()
        self.programs = {name: LightProgram.from_dict(name, data) for name, data in recipe.light_programs.items()}
        self._paused = threading.Event()
        self._paused.set()  # set = running
        self._cancel = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect")  # detection, fine-shot judgement
        self.stages = TwoStage(recipe, station, detector, classifier)
        # (lane, label, start, end) in time.perf_counter() seconds for every move, exposure, detection and
        # fine-shot judgement (from any thread): the bench draws a part's timeline from it
        self.trace: Callable[[str, str, float, float], None] | None = None
        self.implausible_in_row = 0
        self.alarm: str | None = None  # raised by the cycle (implausible frames part after part); a lot stops on it
        # the fine camera's focus, as last judged: a fine shot shows defocus only on a candidate with real
        # structure, so until one has shown focus (since the start, or since a shot out of focus) a part
        # whose shots show none cannot PASS
        self.fine_focus_suspect: str | None = "no fine shot has shown focus since this cycle started"
        self.store_outage: str | None = None  # the result server's outage, as last alarmed (parts are journalled)
        self.serials = SerialSource(station.serial)
        if self.serials.view is not None and self.serials.view not in {v.name for v in recipe.views}:
            raise ConfigError(station.source, "serial.view", f"a view of recipe {recipe.id} "
                                                             f"({', '.join(v.name for v in recipe.views)}), "
                                                             f"got {self.serials.view!r}")

    # -- operator controls (any thread) ---------------------------------------------------------------
    def pause(self) -> None:
        self._paused.clear()

    def resume(self) -> None:
        self._paused.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._paused.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def reset_cancel(self) -> None:
        self._cancel.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.serials.close()

    @property
    def model_versions(self) -> dict[str, str]:
        return {"detector": self.detector.info.name, "classifier": self.classifier.info.name}

    @property
    def provider(self) -> str:
        return self.detector.model.provider.describe("detector")

    def home(self, timeout_s: float = 60.0) -> None:
        self.devices.motion.home(timeout_s).wait(timeout_s + 5)

    # -- one part -------------------------------------------------------------------------------------
    def inspect(self, part_id: str, serial: str = "") -> tuple[int, PartRecord]:
        """Inspect the part in the fixture; always returns a committed record (PASS/FAIL/ERROR)."""
        given = serial
        serial = serial or part_id
        started = time.time()
        clock = _Clock()
        images: dict[str, np.ndarray] = {}
        defects: list[DefectRecord] = []
        extra: dict = {}
        self.events.publish(PartStarted(part_id, serial))
        t0 = time.perf_counter()
        ident = _Ident(given)
        try:
            verdict, reason, defects = self._run(part_id, clock, images, extra, ident)
        except Cancelled:
            verdict, reason = "ERROR", "cancelled by operator: part not fully inspected"
            self._safe_state()
        except (ImplausibleFrame, IncompleteInspection, HardwareError, SerialNotRead) as exc:  # expected faults: one line
            verdict, reason = "ERROR", f"{type(exc).__name__}: {exc}" if isinstance(exc, HardwareError) else str(exc)
            log.info("part %s: %s", part_id, reason)
            self._safe_state()
            self.events.publish(Fault(part_id, reason))
        except Exception as exc:  # noqa: BLE001 - anything else is a defect of ours: ERROR, never PASS, with a trace
            verdict, reason = "ERROR", f"{type(exc).__name__}: {exc}"
            log.warning("part %s: %s\n%s", part_id, reason, traceback.format_exc())
            self._safe_state()
            self.events.publish(Fault(part_id, reason))
        self._count_implausible(part_id, reason if verdict == "ERROR" else "")
        serial = self._settle_serial(ident, serial, extra)
        clock.add("total", time.perf_counter() - t0)
        paths: list[str] = []
        if self.archive is not None and images and self.archive.wants(verdict):
            try:
                paths = self.archive.save(part_id, images, verdict=verdict)
            except (OSError, ValueError) as exc:
                reason += f" (archive failed: {exc})"
        record = PartRecord(part_id=part_id, serial=serial, started_at=started, finished_at=time.time(),
                            station=self.station.name, recipe_id=self.recipe.id, recipe_version=self.recipe.version,
                            recipe_hash=self.recipe.hash, model_versions=self.model_versions, provider=self.provider,
                            verdict=verdict, reason=reason, defects=tuple(defects),
                            timings_s={k: round(v, 4) for k, v in clock.totals.items()}, image_paths=tuple(paths),
                            extra=extra)
        try:
            row = self.store.write(record)
        except Exception as exc:  # noqa: BLE001 - disk full, journal unwritable: never lost silently, never a crash
            return self._not_recorded(record, exc)
        if row > 0:  # negative: journalled on the station, in the server later (the review queue catches up)
            self._enqueue_for_review(row, record)
        self.events.publish(VerdictReady(part_id, record, row))
        return row, record

    # -- before a part / when its record cannot be written ----------------------------------------------
    def before_part(self, part_id: str, serial: str = "") -> str | None:
        """Checks before a part starts. Returns why it must not start (with the alarm raised: the lot
        stops on `alarm`), else None. A result server outage is alarmed once (parts go on into the
        station's journal; the lot pauses on the backlog, see demo.run_lot)."""
        problem = None
        try:
            for value, what in ((self.station.name, "station name"), (part_id, "part id"), (serial or part_id, "serial")):
                check_path_part(value, what)
        except ValueError as exc:
            problem = f"{exc}; part not inspected"
        if problem is None:
            archive_space = self.archive.space_problem() if self.archive is not None else None
            space = self.store.space_problem(need_bytes=100_000) if hasattr(self.store, "space_problem") else None
            if space or archive_space:
                problem = "; ".join(p for p in (space, archive_space) if p) + "; part not inspected"
        if problem is not None:
            self.alarm = problem
            self.events.publish(Alarm(part_id, problem))
            return problem
        outage = getattr(self.store, "forwarding_error", None)
        if outage is not None and self.store_outage is None:
            self.events.publish(Alarm(part_id, f"result server unreachable ({outage}); parts are kept in the station's "
                                               f"journal ({self.store.backlog} waiting) and forwarded when it is back"))
        self.store_outage = outage
        return None

    def _not_recorded(self, record: PartRecord, exc: Exception) -> tuple[int, PartRecord]:
        """The record could not be committed: the part is ERROR (in memory, with the reason), the alarm stops
        the lot, what was committed before stays. Row 0: in no store; the record goes to the log in full."""
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"record not written ({why}); was {record.verdict}" + (f": {record.reason}" if record.reason else "")
        record = replace(record, verdict="ERROR", reason=reason)
        self.alarm = why if isinstance(exc, StoreWriteError) else f"result store: part {record.part_id} not written: {why}"
        log.error("part %s NOT RECORDED: %s; record: %r", record.part_id, why, record)
        self.events.publish(Fault(record.part_id, reason))
        self.events.publish(Alarm(record.part_id, self.alarm))
        return 0, record

    def _count_implausible(self, part_id: str, reason: str) -> None:
        """`alarm_after` parts in a row ended by implausible frames: the cell itself is wrong (lights,
        camera, fixture), not the parts. Raise the alarm once per run of them."""
        if not reason.startswith(IMPLAUSIBLE):
            self.implausible_in_row = 0
            return
        self.implausible_in_row += 1
        if self.implausible_in_row == self.recipe.plausibility.alarm_after:
            self.alarm = (f"{self.implausible_in_row} parts in a row with implausible frames (last: {reason}); "
                          "check lights, cameras and fixture")
            self.events.publish(Alarm(part_id, self.alarm))

    def _enqueue_for_review(self, row: int, record: PartRecord) -> None:
        """NG, grey-band and ERROR parts (and archived PASS samples) go to the QA review queue. The record
        is committed already; should this fail, `ReviewQueue.enqueue_committed` picks the part up later."""
        try:
            self.review.enqueue_from_record(row, record,
                                            sample_pass=record.verdict == "PASS" and bool(record.image_paths))
        except Exception as exc:  # noqa: BLE001 - the verdict stands; the queue catches up on refresh
            log.warning("part %s: not queued for review now (%s); it will be on the next refresh",
                        record.part_id, exc)

    def _settle_serial(self, ident: "_Ident", fallback: str, extra: dict) -> str:
        """The serial the record carries (the one read, else what the caller gave, else the part id);
        a serial read that differs from the one given, and earlier rows with the same serial, are noted."""
        if ident.read is None:
            return fallback
        if ident.given and ident.given != ident.read:
            extra["serial_given"] = ident.given
        if not hasattr(self.store, "query"):
            return ident.read
        try:
            earlier = [row for row, _ in self.store.query(serial=ident.read, limit=20)]
        except Exception as exc:  # noqa: BLE001 - a lookup failure must not change the verdict
            log.warning("serial %s: earlier records not looked up (%s)", ident.read, exc)
        else:
            if earlier:
                extra["serial_seen_before"] = earlier
        return ident.read

    def _safe_state(self) -> None:
        """Best effort after a fault: lights off, motion stopped and the planner flushed.
        Errors here must not hide the first."""
        for action in (self.devices.lights.all_off, self.devices.motion.stop):
            try:
                action()
            except Exception:  # noqa: BLE001
                pass


@dataclass
class _Ident:
    """The part's serial: as the caller gave it, and as resolved (None until known)."""
    given: str
    read: str | None = None
