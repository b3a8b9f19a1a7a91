"""One part's pass over its faces, as the inspection cycle runs it (a mixin of InspectionCycle, which
owns the devices, models, worker pool and operator controls these methods use).

Each face is visited once: the stage moves to its coarse view (lights and camera set during the
move), the coarse camera captures, the detector runs, then that face's fine shots are taken in the
shortest path by the machine model from its view to the next face's view, and the next face follows.
Each fine shot is checked and classified on the worker while the stage moves to the next one; its
result is taken on the cycle's thread in shot order, and a failure there ends the part as ERROR.
The record orders and names the shots as the whole-part plan does (cycle_path.record_order).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from hardware.pose import StagePose

from .channels import record_frames
from .cycle_path import ShotQueue, machine_dynamics, move_cost, pose_of, record_order
from .events import CandidatesFound, FineShotTaken, ViewCaptured
from .measuring import apply_dimensions
from .path_plan import order_shots, order_views
from .planner import Candidate, FineShot
from .plausibility import IMPLAUSIBLE, ImplausibleFrame, OutOfFocus
from .recipe import View
from .two_stage import IncompleteInspection, coarse_image_name, fine_image_name


class Cancelled(Exception):
    """The operator stopped the cycle."""


@dataclass
class _Clock:
    totals: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds


class FacePass:
    """The per-part pass; see the module docstring."""

    def _run(self, part_id: str, clock: _Clock, images: dict[str, np.ndarray], extra: dict, ident: Any):
        """Face by face: coarse view → detect → that face's fine shots (judged on the worker behind the
        next move) → next face. Faces in the order of the shortest path from where the stage stands;
        a face's shots in the shortest path from its view to the next face's view."""
        ident.read = self.serials.before_views(part_id, ident.given)
        cost = move_cost(machine_dynamics(self.devices.motion))
        views = order_views(self.devices.motion.position(), self.recipe.views, lambda v: v.pose, cost)
        reim = self.recipe.reimaging
        candidates: list[Candidate] = []
        fine_frames: dict[str, dict[str, np.ndarray]] = {}  # every step's frame of each fine shot, by its first name
        planned = 0
        queue = ShotQueue(self._pool, self._judge_fine,
                          lambda item, focused, error: self._fine_judged(part_id, item, focused, error, planned, clock))
        try:
            for k, view in enumerate(views):
                self._checkpoint()
                self._move(view.pose, clock, lambda v=view: self._prepare("coarse", v.light_program, v.exposure_us, v.gain))
                frames = self._capture("coarse", view.light_program, view.exposure_us, view.gain, clock)
                frame = next(iter(frames.values()))  # the first step's frame: checks, serial, dimensions, display
                record_frames(images, coarse_image_name(view), frames)
                self.events.publish(ViewCaptured(part_id, view.name, frame))
                future = self._pool.submit(self._detect, view, frames)
                if ident.read is None and view.name == self.serials.view:  # decoded while detection runs
                    ident.read = self.serials.from_frame(frame)
                waited = time.perf_counter()
                result, worker_s = future.result()
                clock.add("detect_wait", time.perf_counter() - waited)
                clock.add("detect", worker_s)  # the frame's checks and the detector, on the worker
                found = self.stages.candidates(view, result, frame)
                candidates.extend(found)
                self.events.publish(CandidatesFound(part_id, view.name, found))
                t = time.perf_counter()
                shots = self.stages.plan(found)  # merging never spans faces: the whole part's shots on this face
                planned += len(shots)
                if planned > reim.max_shots:
                    raise IncompleteInspection(f"at least {planned} fine shots needed, the recipe allows "
                                               f"{reim.max_shots}: part not fully inspected")
                end = views[k + 1].pose if k + 1 < len(views) else None
                shots = order_shots(view.pose, shots, pose_of, cost, end)
                clock.add("planning", time.perf_counter() - t)
                for shot in shots:
                    self._checkpoint()
                    self._move(shot.pose, clock, lambda: self._prepare("fine", reim.light_program, reim.exposure_us, reim.gain))
                    clock.add("classify_wait", queue.collect())
                    frames = self._capture("fine", reim.light_program, reim.exposure_us, reim.gain, clock)
                    frame = next(iter(frames.values()))  # the classifier looks at the first step's frame
                    name = fine_image_name(len(queue.shots), shot.face)
                    images[name] = frame
                    fine_frames[name] = frames
                    queue.submit(shot, name, frame)  # judged on the worker while the stage moves on
            clock.add("classify_wait", queue.collect(wait=True))
        except BaseException:
            queue.abandon()
            raise
        self.devices.lights.all_off()
        t = time.perf_counter()
        ordered = record_order(self.stages.plan(candidates), queue.shots)  # the record's order and image names
        clock.add("planning", time.perf_counter() - t)
        for item in queue.shots:
            images.pop(item.name, None)
        for index, item in ordered:
            record_frames(images, fine_image_name(index, item.shot.face), fine_frames[item.name])
        judged = [item.decisions for _, item in ordered]
        verdict, defects = self.stages.verdict(judged)
        extra.update(self.stages.record_extra(judged))
        verdict = apply_dimensions(verdict, images, self.recipe, self.station, extra)  # features on the coarse frames
        if verdict.verdict == "PASS" and judged and self.fine_focus_suspect is not None:
            raise ImplausibleFrame(f"{IMPLAUSIBLE}fine shots: focus not verified (none shows a candidate with enough "
                                   f"structure to judge it; {self.fine_focus_suspect})")
        return verdict.verdict, verdict.reason, defects

    def _detect(self, view: View, frames: dict[str, np.ndarray]):
        """On the worker: the first frame's checks, then the detector on the view's channels; returns (result,
        seconds). (Checks on a second worker beside the detector measured slower on this 2-core machine.)"""
        t = time.perf_counter()
        try:
            return self.stages.check_and_detect(view, frames), time.perf_counter() - t
        finally:
            self._traced("detect", view.name, t)

    def _judge_fine(self, name: str, frame: np.ndarray, shot: FineShot):
        """On the worker: the fine frame's checks, then its candidates classified. Returns (focus verified,
        decisions, the exception classification raised) so that a verified focus is not lost to a later fault."""
        t = time.perf_counter()
        try:
            focused = self.stages.check_fine(name, frame, shot)  # OutOfFocus / ImplausibleFrame: raised to the cycle
            try:
                return focused, self.stages.classify(shot, frame), None, time.perf_counter() - t
            except Exception as exc:  # noqa: BLE001 - re-raised on the cycle's thread, in shot order
                return focused, None, exc, time.perf_counter() - t
        finally:
            self._traced("classify", name, t)

    def _traced(self, lane: str, label: str, started: float) -> None:
        if self.trace is not None:
            self.trace(lane, label, started, time.perf_counter())

    def _fine_judged(self, part_id: str, item, focused: bool, error: Exception | None, total: int,
                     clock: _Clock) -> None:
        """On the cycle's thread, in shot order: the focus state, the timing and the event of one shot."""
        if isinstance(error, OutOfFocus):
            self.fine_focus_suspect = f"the last shot that did (part {part_id}) was out of focus"
        if focused:
            self.fine_focus_suspect = None  # verified in focus on this shot
        clock.add("classify", item.worker_s)  # the fine frame's checks and the classifier, on the worker
        if item.decisions is None:
            return
        self.events.publish(FineShotTaken(part_id, item.visit, total, item.frame, item.decisions.decisions,
                                          _boxes_in_frame(item.decisions.boxes, item.frame)))

    def _serial_view(self) -> View:
        return next(v for v in self.recipe.views if v.name == self.serials.view)

    def _move(self, pose: StagePose, clock: _Clock, prepare: Callable[[], None] | None = None) -> None:
        """Move and wait for arrival; `prepare` (camera settings, the first light step) runs while the stage travels."""
        t = time.perf_counter()
        status = self.devices.motion.move_to(pose)
        if prepare is not None:
            try:
                prepare()
            except BaseException:
                _quietly(status.wait)  # the move ends first: a fault stops a stage at rest
                raise
        status.wait()
        clock.add("motion", time.perf_counter() - t)
        self._traced("motion", "", t)

    def _prepare(self, camera_role: str, program_name: str, exposure_us: float, gain: float) -> None:
        """Lights and camera for the next capture, set during the move: no frame is taken while the stage travels."""
        self.devices.cameras[camera_role].configure(exposure_us=exposure_us, gain=gain)
        self.devices.lights.apply(self.programs[program_name].steps[0])

    def _capture(self, camera_role: str, program_name: str, exposure_us: float, gain: float,
                 clock: _Clock) -> dict[str, np.ndarray]:
        """One frame per step of the program, by the step's channel name, in step order."""
        t = time.perf_counter()
        program = self.programs[program_name]
        camera = self.devices.cameras[camera_role]
        camera.configure(exposure_us=exposure_us, gain=gain)
        frames = {}
        for channel, step in zip(program.channel_names, program.steps):
            self.devices.lights.apply(step)
            frames[channel] = camera.snap().image
        clock.add("exposure", time.perf_counter() - t)
        self._traced("exposure", camera_role, t)
        return frames

    def _checkpoint(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        if not self._paused.is_set():  # pauses between steps: the stage is at rest here
            self._paused.wait()
            if self._cancel.is_set():
                raise Cancelled()


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - a second fault must not hide the first
        pass


def _boxes_in_frame(boxes, frame: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """Candidate boxes in the fine frame's pixels, rounded and clipped to the frame, for display."""
    height, width = frame.shape[:2]
    clipped = []
    for x0, y0, x1, y1 in boxes:
        left, top = min(max(int(round(x0)), 0), width - 1), min(max(int(round(y0)), 0), height - 1)
        clipped.append((left, top, max(min(int(round(x1)), width), left + 1), max(min(int(round(y1)), height), top + 1)))
    return tuple(clipped)
