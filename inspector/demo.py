"""`inspector run`: a lot on the virtual cell (`--sim`), or on the devices of a station config
(`--config`, where lights and cameras may be virtual: a dry run of a real stage); one line per part
and a summary that scores the verdicts against the virtual cell's ground truth where it has one."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from hardware.sim.cell import DriverStage, VirtualCell
from hardware.sim.faults import check_kind
from hardware.sim.part import PartInstance, make_part

from .archive import ImageArchive
from .cycle import InspectionCycle
from .dimensions import Measurement, true_values
from .devices import Devices, open_devices
from .events import Alarm
from .inference.classifier import Classifier
from .inference.detector import Detector
from .recipe import Recipe
from .results.records import PartRecord
from .results.sqlite_store import ResultStore
from .schema import ConfigError
from .station_config import StationConfig
from .verdict import Finding, decide, judge_dimensions

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_RECIPE = PROJECT_ROOT / "models" / "housing-40x30.recipe.json"


def truth_verdict(part: PartInstance, recipe: Recipe) -> str:
    """What the recipe's rules say about the part's real defects (nuisances are never defects), at
    their exact sizes, and about its true dimensions (the recipe's features): no measurement uncertainty."""
    findings = [Finding(d.kind, 1.0, "defect", d.face, d.u_mm, d.v_mm, d.size_mm) for d in part.true_defects]
    return judge_dimensions(decide(findings, recipe, size_uncertainty_mm=0.0), true_measurements(part, recipe),
                            recipe).verdict


def true_measurements(part: PartInstance, recipe: Recipe) -> list[Measurement]:
    """The recipe's features of a virtual-cell part at its true dimensions."""
    values = true_values(recipe.dimensions, part.dims_mm, part.holes)
    return [Measurement(f.name, values[f.name], f.nominal_mm, f.tolerance_mm) for f in recipe.dimensions.features]


@dataclass
class LotTally:
    rows: list[tuple[PartRecord, str]] = field(default_factory=list)  # (record, truth verdict)

    def add(self, record: PartRecord, truth: str) -> None:
        self.rows.append((record, truth))

    def summary(self) -> list[str]:
        n = len(self.rows)
        verdicts = [r.verdict for r, _ in self.rows]
        bad = [(r, t) for r, t in self.rows if t == "FAIL"]
        good = [(r, t) for r, t in self.rows if t == "PASS"]
        escapes = sum(r.verdict == "PASS" for r, _ in bad)
        overkill = sum(r.verdict != "PASS" for r, _ in good)
        cycle = sorted(r.timings_s.get("total", 0.0) for r, _ in self.rows)
        p95 = cycle[min(len(cycle) - 1, int(round(0.95 * (len(cycle) - 1))))] if cycle else 0.0
        lines = [f"parts: {n}  PASS {verdicts.count('PASS')}  FAIL {verdicts.count('FAIL')}  ERROR {verdicts.count('ERROR')}"
                 f"  yield {verdicts.count('PASS') / n:.1%}" if n else "parts: 0",
                 f"escape rate: {escapes}/{len(bad)} defective parts passed"
                 + (f" ({escapes / len(bad):.1%})" if bad else ""),
                 f"overkill: {overkill}/{len(good)} good parts not passed"
                 + (f" ({overkill / len(good):.1%})" if good else "")]
        if cycle:
            lines.append(f"cycle time (wall): mean {statistics.fmean(cycle):.2f} s, p95 {p95:.2f} s over {n} parts")
            stages = ("motion", "exposure", "detect", "detect_wait", "classify", "planning")
            means = {s: statistics.fmean(r.timings_s.get(s, 0.0) for r, _ in self.rows) for s in stages}
            lines.append("mean per part (wall s): " + ", ".join(f"{s} {v:.3f}" for s, v in means.items())
                         + "  (detect runs behind motion; detect_wait is what it costs on the critical path)")
        return lines


def open_models(recipe: Recipe, out=print) -> tuple[Detector, Classifier]:
    """Load the recipe's detector and classifier once (a station keeps them across lots)."""
    detector = Detector.open(str(recipe.model_path("detector")))
    classifier = Classifier.open(str(recipe.model_path("classifier")))
    out(detector.model.describe())
    out(classifier.model.describe())
    return detector, classifier


def sim_station(cell: VirtualCell) -> StationConfig:
    """The station config of a running virtual cell (its ports, wiring and calibration)."""
    return StationConfig.from_dict(cell.station_config_dict(), source="virtual cell")


def machine_fault(devices: Devices) -> str | None:
    """Why the machine cannot go on with the lot (stage in alarm, link lost), or None."""
    motion = devices.motion
    if not getattr(motion, "connected", True):
        return "motion controller not connected"
    state = motion.status().state
    return "motion controller in alarm" if state == "Alarm" else None


def run_lot(cycle: InspectionCycle, parts: int, *, cell: VirtualCell | None = None, first_seed: int = 0,
            home: bool = True, out=print, on_ready: Callable[[InspectionCycle], None] | None = None,
            note: str = "", part_maker: Callable[[int], PartInstance] = make_part, stop_on_alarm: bool = True) -> LotTally:
    """Inspect `parts` parts with a ready cycle on devices its caller owns (and closes).

    With `cell` the virtual cell loads `part_maker(first_seed + i)` into the fixture before each part and
    the tally scores the verdict against its ground truth; without it (real hardware) the part is
    whatever is in the fixture and gets a station serial. The lot stops at a cancel or when the
    machine is in alarm or disconnected (the operator resets it first), or — with `stop_on_alarm` — when
    the cycle raised its alarm (implausible frames part after part)."""
    recipe = cycle.recipe
    tally = LotTally()
    if home:
        cycle.home()
    if on_ready is not None:
        on_ready(cycle)
    out(f"recipe {recipe.id} v{recipe.version} ({recipe.hash}); {len(recipe.views)} views; "
        + (f"{note}; " if note else "") + f"results → {cycle.store.path}")
    lot = time.strftime("%Y%m%d-%H%M%S")
    for index in range(parts):
        if cycle.cancelled:
            out("stopped by the operator")
            break
        fault = machine_fault(cycle.devices) or (cycle.alarm if stop_on_alarm else None)
        if fault is not None:
            out(f"stopped: {fault}")
            break
        if not _backlog_allows_part(cycle, out):
            out("stopped by the operator")
            break
        if cell is not None:
            wanted = part_maker(first_seed + index)
            serial = wanted.serial
        else:
            wanted, serial = None, f"{cycle.station.name}-{lot}-{index + 1:03d}"
        refused = cycle.before_part(serial, serial)  # free space, names; an alarm (always stops) when refused
        if refused is not None:
            out(f"stopped: {refused}")
            break
        if wanted is not None:
            part = cell.load_part(wanted)
            if part is None:  # the fixture stayed empty (a no-part fault): scored against the part meant
                part = wanted
        else:
            part = None
        row, record = cycle.inspect(serial, serial)
        called = [d for d in record.defects if d.decision in ("defect", "review")]
        found = ", ".join(f"{d.defect_class}{'?' if d.decision == 'review' else ''} {d.size_mm:.2f}mm@{d.face}"
                          for d in called) or "-"
        line = f"{serial}  {record.verdict:<5} {record.timings_s.get('total', 0):5.2f} s  found: {found}"
        if part is not None:
            truth = truth_verdict(part, recipe)
            tally.add(record, truth)
            real = ", ".join(f"{d.kind} {d.size_mm:.2f}mm@{d.face}" for d in part.true_defects) or "-"
            line += f"  | truth {truth}: {real}"
        else:
            tally.add(record, "?")
        out(line + (f"  | {record.reason}" if record.verdict == "ERROR" else ""))
    return tally


def _backlog_allows_part(cycle: InspectionCycle, out, poll_s: float = 0.2) -> bool:
    """While more parts than the store's `max_backlog` wait in the station's journal for the result
    server, the lot pauses (an alarm says why) until they are forwarded; False: cancelled meanwhile."""
    store = cycle.store
    limit = getattr(store, "max_backlog", None)
    if limit is None or store.backlog <= limit:
        return True
    message = (f"lot paused: {store.backlog} parts wait in the station's journal for the result server "
               f"(at most {limit}; {store.forwarding_error or 'forwarding'}); it resumes when they are forwarded")
    out(message)
    cycle.events.publish(Alarm("", message))
    while store.backlog > limit:
        if cycle.cancelled:
            return False
        time.sleep(poll_s)
    out(f"resumed: backlog {store.backlog}")
    return True


def controller_note(cell: VirtualCell, motion_options: Mapping[str, Any] | None, garble_first_move: bool) -> str:
    """What the emulated stage controller was like, for the lot's header line."""
    emulator = cell.motion
    assert emulator is not None
    words = ["ideal (no step rounding)" if emulator.ideal else f"{float(emulator.settings[100]):g} steps/unit"]
    for name, offset in dict((motion_options or {}).get("work_offsets") or {}).items():
        words.append(f"{name} offset ({', '.join(f'{v:g}' for v in offset)})")
    low, high = emulator.reply_latency_s
    if high > 0:
        words.append(f"reply latency {1000 * low:g}–{1000 * high:g} ms")
    if garble_first_move:
        words.append("first move garbled on the line")
    return "controller: " + ", ".join(words)


def run_sim_lot(parts: int, *, first_seed: int, speed_factor: float, recipe_path: str | Path, db: str | Path,
                archive_dir: str | Path | None, out=print, on_event: Callable[[object], None] | None = None,
                on_ready: Callable[[InspectionCycle], None] | None = None, faults: Iterable[str] = (),
                part_maker: Callable[[int], PartInstance] = make_part, stop_on_alarm: bool = True,
                motion_options: Mapping[str, Any] | None = None, garble_first_move: bool = False) -> LotTally:
    """Inspect `parts` parts on a fresh virtual cell. `on_event` receives every cycle event;
    `on_ready` gets the cycle once homed (a GUI keeps it to pause or cancel). `faults` (kinds of
    hardware.sim.faults) are injected into the cell once it is homed and hold for the whole lot.
    `motion_options` go to the stage emulator (GrblEmulator: ideal, steps_per_unit, reply_latency_s,
    work_offsets); `garble_first_move` garbles the first G-code line it receives after homing."""
    kinds = tuple(faults)
    for kind in kinds:  # 'kind' or 'kind@camera' (a camera fault in another camera than the coarse one)
        check_kind(kind.partition("@")[0])
    recipe = Recipe.load(recipe_path)
    detector, classifier = open_models(recipe, out)
    with VirtualCell(seed=first_seed, speed_factor=speed_factor, motion_options=motion_options) as cell, \
            ResultStore(db) as store:
        station = sim_station(cell)
        devices = open_devices(station, virtual_cell=cell)
        cycle = InspectionCycle(station, devices, recipe, detector, classifier, store,
                                archive=ImageArchive(archive_dir) if archive_dir else None)
        if on_event is not None:
            cycle.events.subscribe(on_event)

        def ready(homed: InspectionCycle) -> None:
            if garble_first_move:
                assert cell.motion is not None
                cell.motion.garble_next_line()
            for kind in kinds:
                name, _, camera = kind.partition("@")
                cell.inject_fault(name, camera=camera or None)
            if on_ready is not None:
                on_ready(homed)

        note = (f"speed factor {speed_factor:g}; {controller_note(cell, motion_options, garble_first_move)}"
                + (f"; injected faults: {', '.join(kinds)}" if kinds else ""))
        try:
            tally = run_lot(cycle, parts, cell=cell, first_seed=first_seed, out=out, on_ready=ready, note=note,
                            part_maker=part_maker, stop_on_alarm=stop_on_alarm)
        finally:
            cycle.close()
            devices.close()
    for line in tally.summary():
        out(line)
    out(f"provider: {cycle.provider}")
    return tally


def run_station_lot(config_path: str | Path, parts: int, *, first_seed: int, recipe_path: str | Path, db: str | Path,
                    archive_dir: str | Path | None, out=print) -> LotTally:
    """Inspect `parts` parts on the devices a station config names. Where its lights or cameras are
    virtual (station_config.VIRTUAL) a virtual cell runs in this process without a stage of its own:
    its light emulator answers the light driver, its cameras render the part seeded `first_seed + i`
    at the pose the real stage controller reports, and the tally scores against that part's truth.
    With nothing virtual it is the real cell: the part is whatever is in the fixture."""
    station = StationConfig.load(config_path)
    cameras = station.virtual_cameras
    if cameras and not station.virtual_lights:
        raise ConfigError(station.source, f"cameras.{cameras[0]}.backend",
                          "a virtual camera sees only virtual lights, but lights.url is a real port "
                          "(set lights.url = \"virtual\", or give the camera a real backend)")
    recipe = Recipe.load(recipe_path)
    detector, classifier = open_models(recipe, out)
    stage = DriverStage()
    cell = None
    if cameras or station.virtual_lights:
        cell = VirtualCell(seed=first_seed, stage=stage, light_protocol=station.lights.protocol,
                           light_channels=station.lights.channels, light_template=station.lights.template).start()
    virtual = ([f"virtual lights ({station.lights.protocol})"] if station.virtual_lights else []) \
        + ([f"virtual cameras ({', '.join(cameras)}), parts seeded from {first_seed}"] if cameras else [])
    note = (f"stage {station.motion.protocol} on {station.motion.url}"
            + (f"; dry run: {', '.join(virtual)}" if virtual else ""))
    try:
        with ResultStore(db) as store:
            devices = open_devices(station, virtual_cell=cell)
            stage.bind(devices.motion)
            cycle = InspectionCycle(station, devices, recipe, detector, classifier, store,
                                    archive=ImageArchive(archive_dir) if archive_dir else None)
            try:
                tally = run_lot(cycle, parts, cell=cell if cameras else None, first_seed=first_seed, out=out,
                                note=note)
            finally:
                cycle.close()
                devices.close()
    finally:
        if cell is not None:
            cell.stop()
    for line in tally.summary():
        out(line)
    out(f"provider: {cycle.provider}")
    return tally
