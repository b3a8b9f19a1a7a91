"""Model cards: `<model>.card.json` (machine-readable, the source) and `<model>.card.md` beside it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from inspector.evaluation.report import BEGIN, END
from inspector.inference.model_package import ModelInfo

from .splits import SPLITS


def card_paths(model_path: Path) -> tuple[Path, Path]:
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    return stem.with_name(stem.name + ".card.json"), stem.with_name(stem.name + ".card.md")


def write_card(model_path: Path, *, info: ModelInfo, checkpoint: dict[str, Any], parity: dict[str, Any], command: str,
               data: dict[str, Any]) -> dict[str, Any]:
    model_path = Path(model_path)
    cfg = checkpoint.get("config", {})
    card = {
        "model": model_path.name, "task": info.task, "version": info.version,
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "size_bytes": model_path.stat().st_size,
        "class_names": list(info.class_names), "input": {"size": list(info.input_size), "layout": info.input_layout,
                                                        "colour": info.colour, "normalisation": info.normalisation.__dict__},
        "architecture": info.extra.get("architecture"), "parameters": info.extra.get("parameters"),
        "camera": info.extra.get("camera"), "light_program": info.extra.get("light_program"),
        "thresholds": dict(info.thresholds), "grey_band": {k: list(v) for k, v in info.grey_band.items()},
        "threshold_rule": info.metrics.get("threshold_rule"),
        "novelty": info.extra.get("novelty"), "exclude_kind": info.extra.get("exclude_kind"),
        "training": {"steps": checkpoint.get("step"), "config": cfg, "training_data_fingerprint": info.training_data_fingerprint},
        "data": data, "validation": info.metrics.get("val"), "parity": parity,
        "heldout": None, "reproduce": _reproduce(info.task, cfg, command),
    }
    json_path, _ = card_paths(model_path)
    old = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {}
    if old.get("sha256") == card["sha256"]:
        card["heldout"] = old.get("heldout")  # same graph and metadata: the held-out figures still apply
    save_card(model_path, card)
    return card


def _reproduce(task: str, cfg: dict[str, Any], command: str) -> list[str]:
    """The commands that remake the model: each training and validation set from its manifest (split, parts,
    offset, the detector its hard negatives were mined with), the training run, the export, the evaluation."""
    kind = "coarse" if task == "detect" else "fine"
    train = cfg.get("train")
    train = [train] if isinstance(train, str) else list(train or [])
    steps = [_data_command(kind, path) for path in [*train, *([cfg["val"]] if cfg.get("val") else [])]]
    sets = f"--train {' '.join(map(str, train))} --val {cfg.get('val')}"
    if task == "detect":
        steps.append(f"python -m training train detector {sets} --iterations {cfg.get('iterations')} --seed "
                     f"{cfg.get('seed')} --width {cfg.get('width')} --batch-size {cfg.get('batch_size')} --crop "
                     f"{cfg.get('crop')} --threads {cfg.get('threads')}")
    else:
        steps.append(f"python -m training train classifier {sets} --epochs {cfg.get('epochs')} --seed {cfg.get('seed')} "
                     f"--width {cfg.get('width')} --batch-size {cfg.get('batch_size')} --threads {cfg.get('threads')}"
                     + (f" --exclude-kind {cfg['exclude_kind']} --out {cfg.get('out')}" if cfg.get("exclude_kind") else ""))
    if command:
        steps.append(command)
    steps.append("inspector eval --parts 500 --publish")
    return steps


def _data_command(kind: str, path: Any) -> str:
    manifest_path = Path(path) / "manifest.json"
    if not manifest_path.is_file():
        return f"# {path}: no manifest (an imported set)"
    m = json.loads(manifest_path.read_text(encoding="utf-8"))
    if not m.get("seed_range") or m.get("split") not in SPLITS:
        return f"# {path}: {m.get('split', 'imported')} set, fingerprint {m.get('fingerprint')}"
    offset = m["seed_range"][0] - SPLITS[m["split"]].start
    line = f"python -m training data {kind} --split {m['split']} --parts {m['parts']} --offset {offset} --out {path}"
    mined = m.get("false_candidates") or {}
    if mined.get("mined"):
        line += (f" --false-candidates-from DETECTOR_ONNX  # detector {mined.get('detector')} (trained on "
                 f"{mined.get('detector_fingerprint')}), up to {mined.get('max_per_part')} per part")
    return line


def update_card(model_path: Path, **sections: Any) -> dict[str, Any]:
    json_path, _ = card_paths(model_path)
    card = json.loads(json_path.read_text(encoding="utf-8"))
    card.update(sections)
    card["sha256"] = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    card["size_bytes"] = Path(model_path).stat().st_size
    save_card(model_path, card)
    return card


def save_card(model_path: Path, card: dict[str, Any]) -> None:
    json_path, md_path = card_paths(model_path)
    json_path.write_text(json.dumps(card, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(card), encoding="utf-8")


def _pct(pair: list[int] | tuple[int, int] | None) -> str:
    if not pair:
        return "–"
    n, d = pair
    return f"{100 * n / d:.1f} % ({n}/{d})" if d else f"– (0/0)"


def render_markdown(card: dict[str, Any]) -> str:
    lines = [f"# Model card: `{card['model']}` ({card['task']}, version {card['version']})", ""]
    lines += [f"- sha256 `{card['sha256']}`, {card['size_bytes'] / 1e6:.2f} MB, {card.get('parameters'):,} parameters "
              f"({card.get('architecture')})",
              f"- input: {card['input']['colour']} {card['input']['layout']}, size {card['input']['size']} "
              f"(0 = any), normalisation {card['input']['normalisation']}",
              f"- classes: {', '.join(card['class_names'])}",
              f"- camera: {card.get('camera')}; light program: `{json.dumps(card.get('light_program'))}`", ""]
    lines += ["## Data", ""]
    for split, d in (card.get("data") or {}).items():
        rng = d.get("seed_range")
        lines.append(f"- **{split}**: `{d.get('path')}`, part seeds {rng[0]}–{rng[1]}, fingerprint `{d.get('fingerprint')}`"
                     + (f", counts {d['counts']}" if d.get("counts") else "") if rng else f"- **{split}**: {d}")
    lines += ["", "## Thresholds", "", f"Rule: {card.get('threshold_rule')}", "", "| class | threshold | grey band |",
              "|---|---|---|"]
    for c, t in card["thresholds"].items():
        band = card["grey_band"].get(c)
        lines.append(f"| {c} | {t:.3f} | {('[%.3f, %.3f)' % tuple(band)) if band else '–'} |")
    novelty = card.get("novelty")
    if novelty:
        above = ", ".join(f"{c} {n}/{d}" for c, (n, d) in novelty.get("val_above_limit", {}).items())
        lines += ["", f"Novelty (output `{novelty.get('output')}`): limit **{novelty['limit']:.3f}**; {novelty.get('rule')}. "
                  f"Distance: {novelty.get('distance')} (shrinkage {novelty.get('shrinkage')}, fitted on "
                  f"{novelty.get('fit_crops')} training crops of {', '.join(novelty.get('fitted_classes', []))}). "
                  f"Val crops above the limit: {above}."]
    if card.get("exclude_kind"):
        lines += ["", f"Leave-one-kind-out model: **{card['exclude_kind']}** never seen in training or validation."]
    val = card.get("validation") or {}
    if card["task"] == "detect" and val:
        lines += ["", "## Validation (at these thresholds)", "", "| class | recall | precision |", "|---|---|---|"]
        for c, m in val.items():
            lines.append(f"| {c} | {_pct(m['recall'])} | {_pct(m['precision'])} |")
    elif val:
        lines += ["", "## Validation (at these thresholds)", "", "| true class | samples | called defect | review | correct |",
                  "|---|---|---|---|---|"]
        for c, m in val["per_class"].items():
            lines.append(f"| {c} | {m['samples']} | {m['called_defect']} | {m['review']} | {m['correct']} |")
    p = card.get("parity") or {}
    lines += ["", "## Parity (ONNX in the station runtime vs the torch checkpoint)", "",
              f"{p.get('golden')} golden {p.get('unit')} from the validation set (`{p.get('golden_set')}`): "
              f"max abs output difference **{p.get('max_abs_diff', 0):.2e}**"
              + (f", novelty max relative difference **{p['novelty_max_rel_diff']:.2e}**" if "novelty_max_rel_diff" in p else "")
              + ", decisions "
              f"**{'identical' if p.get('identical_decisions') else 'differ: ' + str(p.get('differences'))}**."]
    held = card.get("heldout")
    lines += ["", "## Held-out evaluation", ""]
    if held and held.get("markdown", [None])[0] == BEGIN:
        lines += held["markdown"]
    else:  # the block `inspector eval --publish` fills in
        lines += [BEGIN, "Not evaluated yet: run `inspector eval --parts 500 --publish`.", END]
    lines += ["", "## Reproduce", "", "```bash", *card.get("reproduce", []), "```", ""]
    t = card.get("training", {})
    lines += [f"Training: {t.get('steps')} steps, config `{json.dumps(t.get('config'))}`.", ""]
    return "\n".join(lines)
