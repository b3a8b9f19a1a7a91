"""Gallery of the virtual cell: one part under each light and camera, with ground-truth overlays,
a contact sheet that shows each defect kind under its revealing light, and a polarity sheet: every
kind and each of its looks (variants) under each light from above, brighter or darker than the metal as the
light's geometry makes it."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .geometry import COARSE_CAMERA, FINE_CAMERA, face_point_pose, face_view_pose
from .part import ALL_KINDS, VARIANTS, Defect, make_part
from .render import LIGHT_ROLES, RenderResult, render

REVEALING_LIGHT = {"scratch": "low_angle", "dent": "low_angle", "stain": "coaxial", "burr": "backlight",
                   "dust": "coaxial", "machining_mark": "coaxial"}
CONTRAST_LIGHT = {"scratch": "backlight", "dent": "backlight", "stain": "low_angle", "burr": "coaxial",
                  "dust": "backlight", "machining_mark": "backlight"}
POLARITY_LIGHTS = ("coaxial", "ring", "low_angle", "seg_n", "seg_e")  # the lights from above
COLOURS = {"crack": (0, 128, 255), "scratch": (0, 0, 255), "dent": (0, 165, 255), "burr": (255, 0, 255), "stain": (0, 220, 0),
           "dust": (200, 200, 0), "machining_mark": (160, 160, 160), "fibre": (255, 200, 120),
           "fingerprint": (180, 120, 200)}


def showcase_defects() -> tuple[Defect, ...]:
    return (Defect(0, "scratch", "top", -8.0, 5.0, 1.2, 0.04, 0.012, 30.0),
            Defect(1, "dent", "top", 6.0, -5.0, 0.15, 0.15, 0.02, 0.0),
            Defect(2, "stain", "top", 8.0, 6.0, 0.8, 0.6, 0.0, 20.0),
            Defect(3, "burr", "top", 4.0, 15.0, 0.5, 0.3, 0.2, 0.0),
            Defect(4, "dust", "top", -5.0, -6.0, 0.12, 0.12, 0.0, 0.0),
            Defect(5, "machining_mark", "top", -10.0, -3.0, 2.0, 0.6, 0.002, 80.0))


def overlay(result: RenderResult) -> np.ndarray:
    image = cv2.cvtColor(result.image, cv2.COLOR_GRAY2BGR)
    for box in result.truth:
        x0, y0, x1, y1 = box.box_px
        colour = COLOURS.get(box.kind, (255, 255, 255))
        pad = 4
        cv2.rectangle(image, (x0 - pad, y0 - pad), (x1 + pad, y1 + pad), colour, 1)
        label = f"{box.kind} {box.size_mm:.2f}mm"
        cv2.putText(image, label, (x0 - pad, max(12, y0 - pad - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1,
                    cv2.LINE_AA)
    return image


def write_gallery(outdir: str | Path, seed: int = 7) -> list[Path]:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    defects = showcase_defects()
    bad = make_part(seed, defects=defects, fixture_error=(0.05, -0.08, 0.4))
    good = make_part(seed, defects=(), fixture_error=bad.fixture_error)
    written: list[Path] = []

    def save(name: str, image: np.ndarray) -> None:
        path = out / name
        cv2.imwrite(str(path), image)
        written.append(path)

    coarse_pose = face_view_pose("top", COARSE_CAMERA)
    for role in LIGHT_ROLES:
        for label, part in (("defects", bad), ("clean", good)):
            result = render(part, coarse_pose, {role: 100}, COARSE_CAMERA, exposure_us=2000, seed=seed)
            save(f"coarse_{role}_{label}.png", result.image)
            if label == "defects":
                save(f"coarse_{role}_{label}_truth.png", overlay(result))
    tiles = []
    for defect in defects:
        pose = face_point_pose("top", defect.u_mm, defect.v_mm, FINE_CAMERA)
        row = []
        for role in (REVEALING_LIGHT[defect.kind], CONTRAST_LIGHT[defect.kind]):
            result = render(bad, pose, {role: 100}, FINE_CAMERA, exposure_us=2000, seed=seed)
            save(f"fine_{defect.kind}_{role}.png", result.image)
            save(f"fine_{defect.kind}_{role}_truth.png", overlay(result))
            row.append(_tile(result.image, f"fine, {role}: {defect.kind} {defect.size_mm:.2f} mm"))
        coarse = render(bad, coarse_pose, {REVEALING_LIGHT[defect.kind]: 100}, COARSE_CAMERA, exposure_us=2000, seed=seed)
        cx, cy = _centre(coarse, defect.id)
        crop = coarse.image[max(0, cy - 60):cy + 60, max(0, cx - 80):cx + 80]
        row.append(_tile(cv2.resize(crop, (800, 600), interpolation=cv2.INTER_NEAREST),
                         f"coarse (x5 zoom), {REVEALING_LIGHT[defect.kind]}"))
        tiles.append(np.hstack(row))
    sheet = np.vstack(tiles)
    save("contact_sheet.png", cv2.resize(sheet, (sheet.shape[1] // 2, sheet.shape[0] // 2), interpolation=cv2.INTER_AREA))
    written.append(write_polarity_sheet(out / "polarity_sheet.png", seed)[0])
    return written


def looks() -> list[tuple[str, str]]:
    """Every (kind, variant) the renderer draws: each kind's first look as "", then its other variants."""
    return [(kind, "") for kind in ALL_KINDS] + [(kind, variant) for kind, variants in VARIANTS.items()
                                                for variant in variants[1:]]


def look_name(kind: str, variant: str = "") -> str:
    return f"{kind}/{variant}" if variant else kind


def polarity_defect(kind: str, variant: str = "") -> Defect:
    """One defect of `kind` (and look `variant`) at a clear spot of the top face, large enough to read at
    the fine camera."""
    size = {"dust": (0.12, 0.12, 0.0), "stain": (0.8, 0.6, 0.0), "dent": (0.3, 0.3, 0.04),
            "machining_mark": (2.0, 0.6, 0.002), "burr": (0.5, 0.3, 0.2), "fibre": (1.2, 0.02, 0.02),
            "fingerprint": (5.0, 3.5, 0.0)}.get(kind, (0.8, 0.04, 0.02))
    if variant == "pit_cluster":
        size = (0.6, 0.6, 0.08)
    u, v = (4.0, 15.0) if kind == "burr" else (8.0, -6.0)  # a burr sits on the face's edge
    return Defect(0, kind, "top", u, v, *size, 30.0, variant=variant)


def write_polarity_sheet(path: str | Path, seed: int = 5) -> tuple[Path, list[tuple[str, str, float]]]:
    """Every kind and look (rows, `look_name`) under each light from above (columns) at the fine camera,
    each tile captioned with its polarity: the median signed change, against the clean part, of the
    defect's own pixels (brighter or darker than the metal around it). Returns the PNG and (look, light, change)."""
    cells, rows = [], []
    for kind, variant in looks():
        defect = polarity_defect(kind, variant)
        name = look_name(kind, variant)
        part = make_part(seed, defects=(defect,), fixture_error=(0.0, 0.0, 0.0))
        clean = make_part(seed, defects=(), fixture_error=(0.0, 0.0, 0.0))
        pose = face_point_pose("top", defect.u_mm, defect.v_mm, FINE_CAMERA)
        row = []
        for role in POLARITY_LIGHTS:
            result = render(part, pose, {role: 100}, FINE_CAMERA, exposure_us=2000, seed=seed)
            diff = result.image.astype(int) - render(clean, pose, {role: 100}, FINE_CAMERA, exposure_us=2000,
                                                     seed=seed).image.astype(int)
            x0, y0, x1, y1 = result.truth[0].box_px
            changed = diff[y0:y1, x0:x1][np.abs(diff[y0:y1, x0:x1]) > 10]
            sign = float(np.median(changed)) if changed.size else 0.0
            cells.append((name, role, sign))
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            crop = result.image[max(0, cy - 75):cy + 75, max(0, cx - 100):cx + 100]
            polarity = "brighter" if sign > 0 else "darker" if sign < 0 else "no change"
            row.append(_tile(cv2.resize(crop, (800, 600), interpolation=cv2.INTER_NEAREST),
                             f"{name}, {role}: {polarity}"))
        rows.append(np.hstack(row))
    sheet = np.vstack(rows)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.resize(sheet, (sheet.shape[1] // 4, sheet.shape[0] // 4), interpolation=cv2.INTER_AREA))
    return out, cells


def _centre(result: RenderResult, defect_id: int) -> tuple[int, int]:
    box = next(b for b in result.truth if b.defect_id == defect_id)
    return (box.box_px[0] + box.box_px[2]) // 2, (box.box_px[1] + box.box_px[3]) // 2


def _tile(image: np.ndarray, caption: str) -> np.ndarray:
    tile = cv2.cvtColor(cv2.resize(image, (800, 600)), cv2.COLOR_GRAY2BGR)
    cv2.rectangle(tile, (0, 0), (800, 44), (30, 30, 30), -1)
    cv2.putText(tile, caption, (12, 31), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.rectangle(tile, (0, 0), (799, 599), (80, 80, 80), 2)
    return tile
