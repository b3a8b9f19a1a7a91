"""BENCHMARKS.md from the bench's figures: machine, commit, command per table, denominators."""
from __future__ import annotations

import json

import os
import time
from pathlib import Path

from ..evaluation.figures import short
from . import cycle_report, quality
from .machine import describe_dynamics


def _f(value, digits: int = 3, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.{digits}f}{unit}"


def _load(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "unknown"


def _command(data: dict, section: str) -> str:
    """The command that produced a section: its own when it came from another run (see `own_run`)."""
    own = (data.get(section) or {}).get("own_run") or {}
    return own.get("command") or data["options"]["command"]


def _own_run(section: dict) -> str:
    own = section.get("own_run")
    if not own:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(own["started_at"]))
    return (f" (a separate run: {when}, commit `{own['commit']}`, load average {_load(own.get('load_average_start'))} "
            f"at start, {_load(own.get('load_average_end'))} at end)")


def _link(plots_dir: Path, report_dir: Path, name: str) -> str:
    return os.path.relpath(plots_dir / name, report_dir).replace(os.sep, "/")


def write_report(data: dict, path: Path, plots_dir: Path, plots: list[Path]) -> Path:
    lines = render(data, plots_dir, path.parent, {p.name for p in plots})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def render(data: dict, plots_dir: Path, report_dir: Path, plot_names: set[str]) -> list[str]:
    m, opts = data["machine"], data["options"]
    img = lambda name, alt: ([f"![{alt}]({_link(plots_dir, report_dir, name)})", ""] if name in plot_names else [])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(data["started_at"]))
    lines = ["# Benchmarks", "",
             "Measured by `inspector bench` (a command, not a test: timings depend on the machine and its load and "
             "are never asserted). Regenerate with the command below; `--help` lists the options.", "",
             "## Machine and run", "",
             f"- **command**: `{opts['command']}` ({'quick' if opts['quick'] else 'full'} mode, {data['seconds']:.0f} s; "
             f"per section: {', '.join(f'{k} {v:.0f} s' for k, v in data.get('sections_s', {}).items())})",
             f"- **when**: {when}; **commit** `{m['commit']}`",
             f"- **CPU**: {m['cpu_model']}, {m['cores']} cores usable ({m['logical_cpus']} logical), "
             f"{_f((m.get('memory_mb') or 0) / 1024, 1)} GiB RAM; {m['os']}; Python {m['python']}",
             f"- **load average** (1, 5, 15 min) at start {_load(m['load_average_start'])}, at end "
             f"{_load(m.get('load_average_end'))} — above the core count means other work shared the CPU and "
             f"timings are inflated",
             f"- **inference**: onnxruntime {m['onnxruntime']}; providers in this build: "
             f"{', '.join(m['providers_in_build'])}; the station ran: *{data['station_provider']}*",
             f"- **recipe** `{data['recipe']['id']}` v{data['recipe']['version']} ({data['recipe']['views']} views, "
             f"`{data['recipe']['path']}`); models {data['models']['detector']}, {data['models']['classifier']}"]
    for name in ("cycle", "latency", "soak", "quality"):
        own = (data.get(name) or {}).get("own_run")
        if own:
            lines.append(f"- **{name}** comes from a separate run: `{own['command']}` — see its section")
    if data.get("frames"):
        fr = data["frames"]
        lines.append(f"- **frames**: {fr['parts']} parts (seeds from {fr['first_seed']}, a range no model saw) rendered "
                     f"once by the virtual cell — {fr['coarse']} coarse and {fr['fine']} fine frames, "
                     f"{fr['mib']:.0f} MiB — and replayed by the timed runs (see *Method*)")
    lines += [""]
    lines += _summary(data)
    lines += _cycle(data, img)
    lines += _latency(data, img)
    lines += _quality(data, img)
    lines += fail_closed_section(report_dir)
    lines += generated_sections(report_dir)
    lines += _soak(data, img)
    lines += peer_section(report_dir)
    lines += _findings(data)
    lines += _method(data)
    return lines


def _summary(data: dict) -> list[str]:
    out = ["## Summary", ""]
    c = data.get("cycle")
    if c and c.get("parts"):
        s = c["stages"]
        out.append(f"- **cycle time**: mean {_f(s['total']['mean'], 2)} s, p95 {_f(s['total']['p95'], 2)} s per part "
                   f"({c['parts']} parts, speed factor {c['speed_factor']:g}); machine-model bound of the plan run "
                   f"{_f(s['bound_plan']['mean'], 2)} s, of the coarse pass alone {_f(s['bound_coarse']['mean'], 2)} s "
                   f"(machine seconds{'' if c['speed_factor'] == 1 else ', ' + format(c['speed_factor'], 'g') + '× faster here'}); "
                   f"cycle / plan bound {_f(c.get('ratio_of_means'), 2)}; motion overhead "
                   f"{_f(s['motion_overhead']['mean'], 2)} s; compute on the critical path "
                   f"{_f(100 * c.get('critical_share_overall', 0), 0)} % of all compute")
    q = data.get("quality") or {}
    if q.get("report"):
        e = q["report"]["summary"]
        out.append(f"- **held-out lot** ({e['parts']} parts, `inspector eval`): escape {short(e['escape'])} of parts "
                   f"the rules fail, line overkill {short(e['line_overkill'])} of good parts (grey band and ERROR "
                   f"included)")
    lat = {k: v for k, v in (data.get("latency") or {}).items() if v.get("available")}
    for name, e in lat.items():
        out.append(f"- **inference on {name}**: detector {_f(e['detector']['ms']['median'], 1)} ms per coarse frame (median), "
                   f"classifier {_f(e['classifier'].get('1', {}).get('ms', {}).get('median'), 2)} ms for one crop, "
                   f"{_f(e['classifier'].get('32', {}).get('ms', {}).get('median'), 2)} ms for 32")
    s = data.get("soak")
    if s:
        r = s["rss_mb"]
        out.append(f"- **soak**: {s['parts']} of {s['target_parts']} parts (stopped by {s['stopped_by']}); RSS "
                   f"{_f(r['after_warmup'], 0)} → {_f(r['end'], 0)} MiB after warm-up; threads {s['threads']['start']} → "
                   f"{s['threads']['end']}; open files {s['fds']['start']} → {s['fds']['end']}; store write median "
                   f"{_f(s['write_ms']['median'], 1)} ms")
    return out + [""]


def _stage_table(s: dict, head: str, rows) -> list[str]:
    return ([f"| {head} | mean | p95 | what it is |", "|---|---|---|---|"]
            + [f"| {key} | {_f(s[key]['mean'])} | {_f(s[key]['p95'])} | {text} |" for key, text in rows] + [""])


def _cycle(data: dict, img) -> list[str]:
    c = data.get("cycle")
    out = ["## Cycle time per part", ""]
    if not c:
        return out + ["Not measured in this run (`--skip cycle`).", ""]
    s, sf = c["stages"], c["speed_factor"]
    per = "" if sf == 1 else f" / {sf:g}"
    out += [f"Command: `{_command(data, 'cycle')}` — {c['parts']} parts of the reference recipe (seeds "
            f"{data['options']['first_seed']}…), virtual cell at speed factor {sf:g}"
            + (" (real time: wall seconds are machine seconds)" if sf == 1 else
               f" (motion and exposure ran {sf:g}× faster than real time; compute did not)") +
            f". Verdicts {c.get('verdicts')}; {c['replayed_frames']} frames replayed, {c['replay_misses']} rendered "
            f"live because the stage stood elsewhere.", "",
            "Measured by the station (its record's `timings_s`, wall seconds per part):", ""]
    out += _stage_table(s, "stage", [
        ("motion", "waiting for the stage: the moves plus the driver's serial round trips (move, `G4 P0`, `?`)"),
        ("exposure", "light commands over serial + exposure time, per shot"),
        ("detect", "detector compute (on a worker thread, behind the next move)"),
        ("detect_wait", "… of which the cycle waited for: detection on the critical path"),
        ("planning", "candidates → fine shots (critical path)"),
        ("classify", "fine-shot classification compute (on the worker, behind the next move)"),
        ("classify_wait", "… of which the cycle waited for: classification on the critical path"),
        ("other", "the rest: events, lights off, bookkeeping"), ("total", "**cycle time**"),
        ("fine_shots", "fine shots per part (count)")])
    out += [f"From the machine model alone (machine seconds per part; no measured time enters them): each move is a "
            f"trapezoidal profile per axis at that axis' own maximum rate and acceleration, the slowest axis governing, "
            f"then the settle time — {describe_dynamics(c.get('dynamics'))} (the virtual cell's emulator parameters; "
            f"`hardware.sim.dynamics.plan_time_s`). The same poses give the same bound at any speed factor or load.", ""]
    out += _stage_table(s, "figure", [
        ("bound_plan", "**plan bound**: the poses this part's cycle commanded (where the stage stood → each face's "
                       "coarse view and its fine shots), each move timed by the dynamics model, plus the recipe's "
                       "exposure × light-program steps per shot"),
        ("plan_motion", "… of which moves"), ("plan_exposure", "… of which exposures"),
        ("bound_coarse", "**coarse-pass bound**: start → every view in the shortest order, plus their exposures — "
                         "the cycle if the detector proposed nothing"),
        ("bound_best", "**best-plan bound**: the same fine shots, each face once, face and shot order chosen "
                       "knowing every face's shots in advance (`inspector.path_plan.best_plan`)"),
        ("fine_cost", "plan bound − coarse-pass bound: what this part's re-imaging costs at best"),
        ("view_move_min", "shortest move between two coarse views")])
    out += ["Measured against the model (wall seconds):", ""]
    out += _stage_table(s, "figure", [
        ("motion_overhead", f"measured motion − plan moves{per}: serial round trips, status polls, the driver "
                            f"learning late that a move ended"),
        ("ratio", f"cycle / (plan bound{per}), per part")])
    coarse_ratio = s["total"]["mean"] * sf / s["bound_coarse"]["mean"] if s["bound_coarse"]["mean"] else None
    out += [f"**Cycle / plan bound** (ratio of the means): **{_f(c.get('ratio_of_means'), 3)}**; cycle / coarse-pass "
            f"bound {_f(coarse_ratio, 3)}. Compute on the critical path (detect and classify waited for + planning) is "
            f"{_f(100 * c.get('critical_share_overall', 0), 1)} % of all compute ({_f(s['critical_compute']['mean'])} s "
            f"of {_f(s['compute']['mean'])} s per part); the rest is hidden behind motion.", ""]
    out += img("cycle_breakdown.png", "cycle-time breakdown") + img("cycle_timeline.png", "one part's timeline")
    return out + cycle_report.comparison(data, img)


def _latency(data: dict, img) -> list[str]:
    lat = data.get("latency")
    out = ["## Inference latency and throughput", ""]
    if not lat:
        return out + ["Not measured in this run (`--skip latency`).", ""]
    out += [f"Command: `{_command(data, 'latency')}`. Station code path (`Detector.detect`: pre-process, onnxruntime, "
            f"decode; `Classifier.classify_crops`), onnxruntime's default threads, after 2 warm-up calls; the "
            f"detector cycles over recorded coarse frames, the classifier over crops of recorded fine frames. Every "
            f"provider of this onnxruntime build was tried.", "",
            "| provider | detector ms/frame median | p95 | infer | frames/s | classifier b1 ms | b8 ms | b32 ms | crops/s at b1 | at b32 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for name, e in lat.items():
        if not e.get("available"):
            out.append(f"| {name} | not available here | | | | | | | | |")
            notes.append(f"- {name}: {e.get('reason')}")
            continue
        d, cl = e["detector"], e["classifier"]
        b = lambda k, f="median": _f(cl.get(k, {}).get("ms", {}).get(f), 2)
        out.append(f"| {name} | {_f(d['ms']['median'], 1)} | {_f(d['ms']['p95'], 1)} | {_f(d['infer_ms']['median'], 1)} | "
                   f"{_f(d['images_per_s'], 1)} | {b('1')} | {b('8')} | {b('32')} | "
                   f"{_f(cl.get('1', {}).get('crops_per_s'), 0)} | {_f(cl.get('32', {}).get('crops_per_s'), 0)} |")
        notes.append(f"- {name}: detector input {d['input']}, {d['calls']} timed calls over {d['frames']} frames; "
                     f"classifier input {e['classifier_input']}, {cl[next(iter(cl))]['calls']} timed calls per batch "
                     f"size, at most {e['classifier_max_batch']} crops per session call"
                     + (f"; {e['reason']}" if e.get("reason") else ""))
    out += [""] + notes + [""]
    out += img("latency.png", "inference latency")
    return out


def _quality(data: dict, img) -> list[str]:
    return quality.section_lines(data.get("quality") or {}, img)


def fail_closed_section(root: Path) -> list[str]:
    """The fail-closed figures `inspector eval --faults / --unknown-kinds / --baseline` published into
    docs/eval/robustness.json, each in the block those commands renew."""
    from ..evaluation.report import COMPARE_BEGIN, END
    from ..evaluation.robustness import FAULTS_BEGIN, UNKNOWN_BEGIN, faults_lines, unknown_lines

    path = root / "docs" / "eval" / "robustness.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    missing = ["Not measured yet: run the command named above.", ""]

    def block(begin: str, lines: list[str] | None) -> list[str]:
        return [begin, *(lines if lines else missing), END, ""]

    return ["## Fail closed", "",
            "What the cell does when it cannot see well: faults injected into the virtual cell (`inspector eval "
            "--faults`), defect kinds the classifier never saw (`inspector eval --unknown-kinds DIR`), and what the "
            "checks cost on good parts (`inspector eval --publish --baseline JSON`).", "",
            "### Fault matrix", "", *block(FAULTS_BEGIN, data.get("faults") and faults_lines(data["faults"])),
            "### Defect kinds the classifier never saw", "",
            *block(UNKNOWN_BEGIN, data.get("unknown_kinds") and unknown_lines(data["unknown_kinds"])),
            "### Cost on good parts", "", *block(COMPARE_BEGIN, data.get("comparison"))]


def peer_section(root: Path) -> list[str]:
    """The peer comparison `training/peers/yolo_peer.py compare --out docs/peer` wrote (docs/peer/compare.md),
    under this report's heading; its commands and method are in that file."""
    path = root / "docs" / "peer" / "compare.md"
    head = ["## Peer comparison (Ultralytics YOLO)", ""]
    if not path.is_file():
        return head + ["**Not run**: see training/peers/README.md for the commands (a separate environment with "
                       "Ultralytics); `compare --out docs/peer` writes the figures this section shows.", ""]
    body = path.read_text(encoding="utf-8").splitlines()
    body = body[1:] if body and body[0].startswith("# ") else body  # its own title
    return head + [("#" + line if line.startswith("## ") else line) for line in body] + [""]


def generated_sections(root: Path) -> list[str]:
    """The blocks other commands publish: the measurement system analysis (`inspector msa --sim
    --publish`, docs/msa/report.json) and teaching a new kind (`inspector eval --teach-kind`,
    docs/eval/teach.json)."""
    from ..evaluation.report import END
    from ..evaluation.teach_curve import TEACH_BEGIN, teach_lines
    from ..msa_report import MSA_BEGIN, benchmark_lines

    def read(path: Path) -> dict:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    msa, teach = read(root / "docs" / "msa" / "report.json"), read(root / "docs" / "eval" / "teach.json")
    missing = ["Not measured yet: run the command named above.", ""]
    return ["## Measurement system analysis", "",
            "Gauge R&R of the recipe's dimensions and agreement of the verdicts (`inspector msa --sim --publish`).", "",
            MSA_BEGIN, *(benchmark_lines(msa["summary"]) if msa else missing), END, "",
            "## Teaching a new kind", "",
            "The learning curve of teaching the classifier a kind no shipped model saw (`inspector eval --teach-kind "
            "crack --publish`).", "",
            TEACH_BEGIN, *(teach_lines(teach) if teach else missing), END, ""]


def _soak(data: dict, img) -> list[str]:
    s = data.get("soak")
    out = ["## Soak", ""]
    if not s:
        return out + ["Not measured in this run (`--skip soak`).", ""]
    r = s["rss_mb"]
    out += [f"Command: `{_command(data, 'soak')}`{_own_run(s)} — target {s['target_parts']} parts, ran **{s['parts']}** "
            f"(stopped by {s['stopped_by']}; budget "
            f"{'none' if s['budget_s'] in (None, float('inf')) else format(s['budget_s'] / 60, 'g') + ' min'}) in {s['seconds']:.0f} s, "
            f"{_f(s['parts_per_s'], 2)} parts/s, at speed factor {s['speed_factor']:g} (the highest the bench uses: "
            f"a 0.4 s move takes 0.4 ms). The cameras replay {s['cached_parts']} recorded parts in rotation; each "
            f"part runs the real cycle engine, drivers, serial ports, models and SQLite store and gets its own "
            f"record. Verdicts {s['verdicts']}; live renders {s['replay_misses']}.", "",
            "| measure | start | after warm-up (10 %) | end | max |", "|---|---|---|---|---|",
            f"| resident memory (MiB) | {_f(r['start'], 1)} | {_f(r['after_warmup'], 1)} | {_f(r['end'], 1)} | {_f(r['max'], 1)} |",
            f"| threads (kernel) | {s['threads']['start']} | | {s['threads']['end']} | {s['threads']['max']} |",
            f"| threads (Python) | {s['python_threads']['start']} | | {s['python_threads']['end']} | {s['python_threads']['max']} |",
            f"| open file descriptors | {s['fds']['start']} | | {s['fds']['end']} | {s['fds']['max']} |", "",
            f"Result-store write per part (one committed SQLite transaction, WAL, synchronous=FULL), over "
            f"{s['write_ms']['n']} writes: median {_f(s['write_ms']['median'], 2)} ms, p95 {_f(s['write_ms']['p95'], 2)} ms, "
            f"max {_f(s['write_ms']['max'], 1)} ms; first tenth median {_f(s['write_ms_first_tenth']['median'], 2)} ms, "
            f"last tenth {_f(s['write_ms_last_tenth']['median'], 2)} ms. Wall time per part: median "
            f"{_f(s['part_s']['median'], 3)} s (compute-bound at this speed factor). Samples: {s['samples']}.", ""]
    if s["parts"] < s["target_parts"]:
        out += [f"The issue's target is {s['target_parts']} parts; at {_f(s['parts_per_s'], 2)} parts/s that needs about "
                f"{s['target_parts'] / max(s['parts_per_s'], 1e-9) / 60:.0f} min of this machine, so the run reports "
                f"{s['parts']}/{s['target_parts']}. `inspector bench --skip cycle,latency,quality --soak-parts "
                f"{s['target_parts']} --soak-minutes 0` runs the whole target.", ""]
    out += img("soak.png", "soak: memory, threads, open files, store writes")
    return out


def _findings(data: dict) -> list[str]:
    out = ["## What the figures expose", ""]
    c = data.get("cycle")
    if c and c.get("parts"):
        out += cycle_report.findings(data)

    lat = (data.get("latency") or {}).get("CPU")
    if lat and lat.get("available") and c and c.get("parts"):
        budget = c["stages"]["view_move_min"]["mean"]  # machine seconds: the detector's budget on a real cell
        det = lat["detector"]["ms"]["p95"] / 1000.0
        out.append(f"- **Detector budget**: the shortest move between two coarse views takes {_f(budget)} s of machine "
                   f"time (dynamics plan, mean over parts); the detector needs {_f(det)} s per frame at p95 on CPU, so "
                   + ("one detection hides behind one move." if det < budget else
                      "**a detection does not fit behind one move**: it queues and surfaces as detect_wait."))
    if lat and lat.get("available") and {"1", "32"} <= set(lat["classifier"]):
        one, many = lat["classifier"]["1"]["crops_per_s"], lat["classifier"]["32"]["crops_per_s"]
        out.append(f"- **Classifier batching** on CPU: {_f(many, 0)} crops/s at batch 32 against {_f(one, 0)} at batch 1 "
                   f"(× {_f(many / one if one else None, 2)}). A fine shot holds one to a few candidates, so the cycle "
                   f"calls it with small batches"
                   + (f"; at {_f(1000 / one, 2)} ms per crop that does not matter here." if one and 1000 / one < 5
                      else f"; at {_f(1000 / one if one else None, 2)} ms per crop, batching across shots would help."))
    s = data.get("soak")
    if s:
        g = s["rss_mb"]["growth_after_warmup"]
        slope = s["rss_mb"].get("slope_mib_per_1000_parts_second_half")
        out.append(f"- **Soak**: RSS growth after warm-up {_f(g, 1)} MiB over {s['parts']} parts"
                   + (f" ({_f(slope, 2)} MiB per 1000 parts over the second half of the run"
                      f"{', i.e. about ' + _f(slope * 10, 0) + ' MiB over 10 000 parts if it kept that pace' if slope and slope > 0.5 else ''})"
                      if slope is not None else "")
                   + f"; kernel threads {s['threads']['start']} → {s['threads']['end']}, open files "
                   f"{s['fds']['start']} → {s['fds']['end']}; store write median {_f(s['write_ms_first_tenth']['median'], 2)} ms in the first tenth, "
                   f"{_f(s['write_ms_last_tenth']['median'], 2)} ms in the last.")
    return out + [""]


def _method(data: dict) -> list[str]:
    return ["## Method and caveats", "",
            "- **Replayed frames.** The virtual camera renders each frame on the CPU (about 0.2 s for a coarse frame). "
            "A real camera spends its exposure plus readout, not a render. The bench therefore inspects each part once "
            "with rendering cameras at speed factor 50, keeping every frame and the stage pose it was taken at, then "
            "runs the timed cycle again with cameras that wait the exposure time and hand back the recorded frame — "
            "only if the stage stands where it stood for that frame (otherwise they render live and the tables count "
            "it). The station code, models, drivers, serial traffic over pseudo-terminals and machine dynamics are the "
            "real ones. Sensor readout and transfer of a real camera are not modelled.",
            "- **Machine seconds.** The cycle runs at speed factor 1, so its wall seconds are machine seconds; compute "
            "is measured on this machine's CPU while the emulators (same process) also run.",
            "- **Bounds come from the model, not the measurement**: the commanded poses (`plan_poses` in `bench.json`), "
            "the recipe's exposures and light programs, the emulator's axis limits and settle time. Light switching, "
            "camera readout and serial latency are not in the model, so they count in the cycle, not the bound.",
            "- **Shared CPU.** The load average in the header says how busy the machine was; with 2 cores shared, "
            "detection behind motion and the emulators compete for them.",
            "- **Quality** figures come from `inspector eval`: the station's own cycle inspects held-out parts (seeds no "
            "model was trained or tuned on) on the virtual cell, scored against the recipe's rules on each part's true "
            "defects, with counts and 95 % intervals beside every rate.",
            "- **Fixed after the soak exposed it**: the virtual cell's emulators kept every chunk of bytes they "
            "received (`PtyDevice.received`, a protocol log for tests): about 3.8 KiB per part of the 5.2 KiB/part "
            "resident growth measured over 150 parts after warm-up at speed factor 1000. They now keep the latest "
            "10 000 chunks. That log exists only in the simulator, not in a station driving real controllers.",
            "- Raw figures of this run: `out/bench/bench.json` (with `--work`, there); `inspector bench --report-from "
            "FILE` writes this report again from them without measuring.", ""]
