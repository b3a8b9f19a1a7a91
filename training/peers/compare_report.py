"""compare.json → compare.md: counts with their denominators, the commands, how it was measured."""
from __future__ import annotations


def _frac(pair) -> str:
    found, total = pair
    return f"{found}/{total} ({found / total:.1%})" if total else "0/0 (–)"


def markdown(report: dict) -> str:
    det, peer, lat, data = report["detector"], report["peer"], report["latency"], report["set"]
    training = peer.get("training") or {}
    lines = [
        "# Coarse detector vs YOLOv8n peer",
        "",
        f"Set: `{data['path']}` — {data['frames']} coarse frames, fingerprint {data['fingerprint']}, "
        f"part seeds {data['seed_range']}.",
        f"Detector: `{det['path']}` v{det['version']} at its shipped thresholds "
        f"({', '.join(f'{k} {v:g}' for k, v in det['thresholds'].items())}).",
        f"Peer: `{peer['path']}`, input {peer['input_size'][0]}×{peer['input_size'][1]}"
        + (f", {training.get('epochs_done')} epochs on {training.get('images', {}).get('train')} training images "
           f"at imgsz {training.get('imgsz')} ({training.get('wall_s', {}).get('train')} s)" if training else "")
        + f"; operating point: confidence {peer['threshold']:.4f} ({peer['rule']}).",
        "",
        "| figure | detector | peer |",
        "|---|---|---|",
        f"| recall, small defects (< 0.25 mm) | {_frac(det['recall_small'])} | {_frac(peer['recall_small'])} |",
        f"| recall, defects ≥ 0.25 mm | {_frac(det['recall_ge_0.25'])} | {_frac(peer['recall_ge_0.25'])} |",
        f"| recall, all defects | {_frac(det['recall_all'])} | {_frac(peer['recall_all'])} |",
        f"| false candidates per frame | {det['false_candidates']}/{det['frames']} = {det['false_per_frame']:.2f} "
        f"| {peer['false_candidates']}/{peer['frames']} = {peer['false_per_frame']:.2f} |",
        f"| candidates (all) | {det['candidates']} | {peer['candidates']} |",
        "",
        "## Recall per class and size",
        "",
        "| class / size | detector | peer |",
        "|---|---|---|",
    ]
    for key in det["by_class_and_size"]:
        lines.append(f"| {key} | {_frac(det['by_class_and_size'][key])} | {_frac(peer['by_class_and_size'].get(key, [0, 0]))} |")
    lines += [
        "",
        "## Latency (CPU)",
        "",
        f"Frame {lat['frame'][0]}×{lat['frame'][1]}; detector input {'×'.join(map(str, lat['detector']['input']))} "
        f"(padded to a multiple of 32), peer input {'×'.join(map(str, lat['peer']['input']))} (letterboxed, grey 114"
        + (f"; the frame scaled by {lat['peer']['frame_scale']:g}, so defects shrink with it" if lat['peer']['frame_scale'] != 1 else
           "; the frame at full resolution") + "). "
        f"{lat['provider']}, intra-op {lat['threads']['intra_op']} threads, inter-op {lat['threads']['inter_op']}, "
        f"thread spinning {lat['threads']['spinning']} for both; {lat['warmup']} warm-ups then {lat['runs']} timed runs "
        f"each; {lat['how']}.",
        "",
        "| model | session.run median ms | p95 ms | pre + run + post median ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    for name in ("detector", "peer"):
        r, f = lat[name]["session_run"], lat[name]["pre_run_post"]
        lines.append(f"| {name} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {f['median_ms']:.1f} | {f['p95_ms']:.1f} |")
    lines += [
        "",
        "## How",
        "",
        f"Matching: {report['matching']}. The detector runs through the station's `Detector.detect`; the peer through "
        "onnxruntime with Ultralytics' pre-processing reproduced (letterbox, BGR → RGB of the stored channel stack "
        "— a mono frame is repeated to 3 channels —, /255) and a "
        "class-agnostic NMS at IoU 0.3 (the station's `nms`). Peer candidates are gathered once at the sweep floor "
        f"({peer['floor']:g}); any threshold above it is the same candidates filtered (greedy NMS and greedy matching "
        "both keep their order). Both read the same stored frames: the set holds the detector's channel stack as the "
        "station builds it (for the reference capture, bright and dark field and the photometric curvature), so the "
        "latency here leaves out building it; the station's cost of that is in the cycle's detect time.",
        "",
        "Commands:",
        "",
        "```",
        *([training["command"]] if training.get("command") else []),
        report["command"],
        "```",
        "",
    ]
    return "\n".join(lines)
