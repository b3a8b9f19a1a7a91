"""The two-stage inspection cycle: views → coarse detect → physical re-imaging → classify →
verdict → record.

Per view the stage moves, the lights are set and the coarse camera captures; detection of view k
runs on a worker thread while the stage travels to view k+1. Candidates are mapped to face mm,
merged and ordered, each group is re-imaged with the fine camera, and all fine shots are
classified in batches. Any fault — serial, camera, model, timeout — or a cancel ends the part as
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from hardware.errors import HardwareError
from hardware.lights.base import LightProgram
from hardware.pose import StagePose

from .archive import ImageArchive, check_path_part
from .devices import Devices
from .events import Alarm, CandidatesFound, EventBus, Fault, FineShotTaken, PartStarted, VerdictReady, ViewCaptured
from .inference.classifier import Classifier
from .inference.detector import DetectionResult, Detector
from .planner import Candidate
from .plausibility import IMPLAUSIBLE, ImplausibleFrame, OutOfFocus
from .recipe import Recipe, View
from .results.records import DefectRecord, PartRecord
from .results.sqlite_store import ResultStore, StoreWriteError
from .review import ReviewQueue
from .serials import SerialNotRead, SerialSource
from .schema import ConfigError
from .station_config import StationConfig
from .two_stage import IncompleteInspection, TwoStage, coarse_image_name, fine_image_name

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The operator stopped the cycle."""


@dataclass
class _Clock:
    totals: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds


class InspectionCycle:
    def __init__(self, station: StationConfig, devices: Devices, recipe: Recipe, detector: Detector,
                 classifier: Classifier, store: ResultStore, *, archive: ImageArchive | None = None,
                 events: EventBus | None = None, review: ReviewQueue | None = None):
        self.station, self.devices, self.recipe = station, devices, recipe
        self.detector, self.classifier, self.store = detector, classifier, store
        self.review = review if review is not None else ReviewQueue(store)
        self.archive = archive
        self.events = events or EventBus()
        self.programs = {name: LightProgram.from_dict(name, data) for name, data in recipe.light_programs.items()}
        self._paused = threading.Event()
        self._paused.set()  # set = running
        self._cancel = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect")
        self.stages = TwoStage(recipe, station, detector, classifier)
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

    def _run(self, part_id: str, clock: _Clock, images: dict[str, np.ndarray], extra: dict, ident: "_Ident"):
        ident.read = self.serials.before_views(part_id, ident.given)
        pending: list[tuple[View, Future[DetectionResult]]] = []
        for view in self.recipe.views:
            self._checkpoint()
            self._move(view.pose, clock)
            frame = self._capture("coarse", view.light_program, view.exposure_us, view.gain, clock)
            images[coarse_image_name(view)] = frame
            self.events.publish(ViewCaptured(part_id, view.name, frame))
            # detection of this view runs while the stage travels to the next one
            pending.append((view, self._pool.submit(self.stages.check_and_detect, view, frame)))
        if ident.read is None:  # the serial is marked on the part: decoded while detection runs
            ident.read = self.serials.from_frame(images[coarse_image_name(self._serial_view())])
        candidates: list[Candidate] = []
        for view, future in pending:
            waited = time.perf_counter()
            result = future.result()
            clock.add("detect_wait", time.perf_counter() - waited)
            clock.add("detect", result.timings.total_ms / 1000.0)
            found = self.stages.candidates(view, result, images[coarse_image_name(view)])
            candidates.extend(found)
            self.events.publish(CandidatesFound(part_id, view.name, found))
        t = time.perf_counter()
        shots = self.stages.plan(candidates)
        clock.add("planning", time.perf_counter() - t)
        if len(shots) > self.recipe.reimaging.max_shots:
            raise IncompleteInspection(f"{len(shots)} fine shots needed, the recipe allows "
                                       f"{self.recipe.reimaging.max_shots}: part not fully inspected")
        reim = self.recipe.reimaging
        judged = []
        for index, shot in enumerate(shots):
            self._checkpoint()
            self._move(shot.pose, clock)
            frame = self._capture("fine", reim.light_program, reim.exposure_us, reim.gain, clock)
            name = fine_image_name(index, shot.face)
            images[name] = frame
            try:
                if self.stages.check_fine(name, frame, shot):
                    self.fine_focus_suspect = None  # verified in focus on this shot
            except OutOfFocus:
                self.fine_focus_suspect = f"the last shot that did (part {part_id}) was out of focus"
                raise
            decisions = self.stages.classify(shot, frame)
            clock.add("classify", decisions.classify_s)
            judged.append(decisions)
            self.events.publish(FineShotTaken(part_id, index, len(shots), frame, decisions.decisions,
                                              _boxes_in_frame(decisions.boxes, frame)))
        self.devices.lights.all_off()
        verdict, defects = self.stages.verdict(judged)
        extra.update(self.stages.record_extra(judged))
        if verdict.verdict == "PASS" and shots and self.fine_focus_suspect is not None:
            raise ImplausibleFrame(f"{IMPLAUSIBLE}fine shots: focus not verified (none shows a candidate with enough "
                                   f"structure to judge it; {self.fine_focus_suspect})")
        return verdict.verdict, verdict.reason, defects

    def _serial_view(self) -> View:
        return next(v for v in self.recipe.views if v.name == self.serials.view)

    def _move(self, pose: StagePose, clock: _Clock) -> None:
        t = time.perf_counter()
        self.devices.motion.move_to(pose).wait()
        clock.add("motion", time.perf_counter() - t)

    def _capture(self, camera_role: str, program_name: str, exposure_us: float, gain: float, clock: _Clock) -> np.ndarray:
        t = time.perf_counter()
        program = self.programs[program_name]
        camera = self.devices.cameras[camera_role]
        camera.configure(exposure_us=exposure_us, gain=gain)
        frames = []
        for step in program.steps:
            self.devices.lights.apply(step)
            frames.append(camera.snap().image)
        clock.add("exposure", time.perf_counter() - t)
        return frames[0]  # multi-step programs: the detector looks at the first step

    def _checkpoint(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        if not self._paused.is_set():  # pauses between steps: the stage is at rest here
            self._paused.wait()
            if self._cancel.is_set():
                raise Cancelled()

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


def _boxes_in_frame(boxes, frame: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """Candidate boxes in the fine frame's pixels, rounded and clipped to the frame, for display."""
    height, width = frame.shape[:2]
    clipped = []
    for x0, y0, x1, y1 in boxes:
        left, top = min(max(int(round(x0)), 0), width - 1), min(max(int(round(y0)), 0), height - 1)
        clipped.append((left, top, max(min(int(round(x1)), width), left + 1), max(min(int(round(y1)), height), top + 1)))
    return tuple(clipped)
