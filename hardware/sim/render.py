"""Image formation in the virtual cell: what a mono camera sees of the part for a stage pose and
a set of light levels. Deterministic per seed; vectorised numpy/cv2.

Per pixel: face coordinates → height map (chamfers, holes, texture, defects) → surface tilt →
reflected light per channel, each with its geometry (DESIGN.md §4); the serial's laser-marked
Data Matrix (marking.py) darkens the reflectance where its modules lie. The outline and the holes are
area-sampled (a pixel on an edge shows the share of it the part covers), at the part's true dimensions
(part.true_dimensions), so edges measure to a fraction of a pixel. Light per channel:
- coaxial: specular from surfaces facing the camera; slopes go dark; reflectance changes (stains) show;
- low_angle: grazing ring: flat metal stays dark, slopes and rough spots light up (dents, scratches);
- ring: ~45° ring, diffuse and moderate;
- backlight: the part is an opaque silhouette on a bright field; burrs change the outline;
- seg_n/e/s/w: one side at 40° elevation, Lambertian, for photometric stereo.
Then the camera: exposure × gain, defocus (Z away from the focal plane beyond the depth of
field), optics PSF, vignetting, shot and read noise, 8-bit quantisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import cv2
import numpy as np

from .geometry import FACE_TABLE, PART_DIMS_MM, CameraSpec, StagePose, face_to_pixel, faces, pixel_grid_to_face, visible_face
from .marking import MARK_CENTRE_MM, MARK_FACE, draw_mark, mark_extent_mm
from .looks import across_half_mm, crack_meander_mm, draw_look
from .part import CHAMFER_MM, Defect, PartInstance

LIGHT_ROLES = ("coaxial", "ring", "low_angle", "backlight", "seg_n", "seg_e", "seg_s", "seg_w")
SEGMENT_AZIMUTH_DEG = {"seg_e": 0.0, "seg_n": 90.0, "seg_w": 180.0, "seg_s": 270.0}  # light comes from there
SEGMENT_ELEVATION_DEG = 40.0
FULL_SCALE = 230.0  # grey level of a perfect mirror under 100 % coaxial at 2 ms exposure, gain 1
REFERENCE_EXPOSURE_US = 2000.0
BACKGROUND = 0.03  # what the fixture around the part returns of a top light
BEAD_BLAST_SPECULAR, BEAD_BLAST_SCATTER = 0.85, 0.03  # a bead-blasted finish: weaker mirror lobe, more diffuse


@dataclass(frozen=True)
class TruthBox:
    defect_id: int
    kind: str
    is_nuisance: bool
    box_px: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), clipped to the frame
    size_mm: float
    face: str
    u_mm: float
    v_mm: float


@dataclass(frozen=True)
class RenderResult:
    image: np.ndarray
    truth: tuple[TruthBox, ...]
    face: str
    defocus_mm: float


def render(part: PartInstance, pose: StagePose, lights: Mapping[str, float], camera: CameraSpec, *,
           exposure_us: float, gain: float = 1.0, seed: int | None = None) -> RenderResult:
    unknown = set(lights) - set(LIGHT_ROLES)
    if unknown:
        raise ValueError(f"unknown light role(s) {sorted(unknown)}; expected {', '.join(LIGHT_ROLES)}")
    scene = _scene(part, pose, camera)  # the steps of one capture share the pose: its surface is built once
    irradiance = np.zeros(scene.shape, np.float32)
    for role, level in lights.items():
        if level <= 0:
            continue
        irradiance += (level / 100.0) * _shade(role, *scene.maps)
    image = _camera(irradiance, camera, scene.defocus, exposure_us, gain, seed if seed is not None else part.seed)
    return RenderResult(image=image, truth=scene.truth, face=scene.face, defocus_mm=round(float(scene.defocus), 4))


@dataclass(frozen=True)
class _Scene:
    """The surface one pose shows, before any light: slopes and reflectance maps (read only)."""

    shape: tuple[int, int]
    maps: tuple[np.ndarray, ...]  # tilt, gx, gy, albedo, specular, scatter, solid, opaque (_shade's arguments)
    truth: tuple[TruthBox, ...]
    face: str
    defocus: float


@lru_cache(maxsize=2)
def _scene(part: PartInstance, pose: StagePose, camera: CameraSpec) -> _Scene:
    face_name, facing = visible_face(pose)
    table = FACE_TABLE if tuple(part.dims_mm) == PART_DIMS_MM else faces(part.dims_mm)  # the part as machined
    face = table[face_name]
    u, v, plane_z = pixel_grid_to_face(camera, pose, face_name, part.fixture_error, table=table)
    defocus = plane_z - camera.focal_z
    px = camera.mm_per_px
    shape = u.shape

    inside = (np.abs(u) <= face.half_u) & (np.abs(v) <= face.half_v)
    edge_distance = np.minimum(face.half_u - np.abs(u), face.half_v - np.abs(v))
    # the share of each pixel the face covers (area sampling of the outline: edges at sub-pixel positions)
    cover = np.clip(0.5 + edge_distance / px, 0, 1).astype(np.float32)
    height = -np.clip(CHAMFER_MM - edge_distance, 0, CHAMFER_MM).astype(np.float32)
    height += _texture(face_name, u, v, part.texture_phase, part.finish)
    albedo = np.full(shape, 0.85, np.float32)
    specular = np.ones(shape, np.float32)
    scatter = np.zeros(shape, np.float32)
    if part.finish == "bead_blasted":  # sub-pixel craters: part of the mirror lobe goes into diffuse scatter
        specular *= np.float32(BEAD_BLAST_SPECULAR)
        scatter += np.float32(BEAD_BLAST_SCATTER)
    hole_cover = np.zeros(shape, np.float32)  # share of each pixel open to a hole (area sampled)
    through_cover = np.zeros(shape, np.float32)
    if face_name == "top":
        for hu, hv, radius, is_through in part.holes:
            window = _window(camera, pose, part, face_name, hu, hv, radius + 0.4, radius + 0.4)
            if window is None:
                continue
            r = np.hypot(u[window] - hu, v[window] - hv)
            height[window] -= np.clip(radius + 0.25 - r, 0, 0.25)
            opening = np.clip(0.5 + (radius - r) / px, 0, 1).astype(np.float32)
            hole_cover[window] = np.maximum(hole_cover[window], opening)
            if is_through:
                through_cover[window] = np.maximum(through_cover[window], opening)

    if part.marked and face_name == MARK_FACE:
        reach = mark_extent_mm()
        window = _window(camera, pose, part, face_name, *MARK_CENTRE_MM, reach, reach)
        if window is not None:
            draw_mark(part.serial, part.seed, u[window], v[window], albedo[window], specular[window])

    outline = inside.copy()
    truth = []
    for defect in part.defects:
        if defect.face != face_name:
            continue
        box = _truth_box(camera, pose, part, defect)
        if box is None:
            continue
        truth.append(box)
        reach = _reach_mm(defect) + 3 * px
        window = _window(camera, pose, part, face_name, defect.u_mm, defect.v_mm, reach, reach)
        if window is not None:
            _draw_defect(defect, face, u[window], v[window], px, height[window], albedo[window], specular[window],
                         scatter[window], inside[window])

    body = np.where(inside & ~outline, np.float32(1), cover)  # material grown past the outline (burrs) is whole
    tilt, gx, gy = _slopes(height, px)
    solid = body * (1 - hole_cover)
    opaque = body * (1 - through_cover)  # what stops the backlight: a blind hole's floor does
    maps = (tilt, gx, gy, albedo, specular, scatter, solid, opaque)
    for array in maps:
        array.flags.writeable = False  # shared by every capture at this pose
    return _Scene(shape, maps, tuple(truth), face_name, float(defocus))


def render_background(lights: Mapping[str, float], camera: CameraSpec, *, exposure_us: float, gain: float = 1.0,
                      seed: int = 0, defocus_mm: float = 0.0) -> np.ndarray:
    """What the camera sees of an empty fixture: the background around the part (dim under the top
    lights, bright against the backlight), with the same camera model and noise."""
    unknown = set(lights) - set(LIGHT_ROLES)
    if unknown:
        raise ValueError(f"unknown light role(s) {sorted(unknown)}; expected {', '.join(LIGHT_ROLES)}")
    level = sum(max(0.0, percent) / 100.0 * (1.0 if role == "backlight" else BACKGROUND)
                for role, percent in lights.items())
    irradiance = np.full((camera.height_px, camera.width_px), level, np.float32)
    return _camera(irradiance, camera, defocus_mm, exposure_us, gain, seed)


# -- surface ------------------------------------------------------------------------------------
def _texture(face: str, u: np.ndarray, v: np.ndarray, phase: tuple[float, float], finish: str = "brushed") -> np.ndarray:
    """Brushed streaks along u on the top face; periodic milling marks across the side faces. A bead-blasted
    part: fine isotropic roughness on every face (waves in many directions, no streaks)."""
    if finish == "bead_blasted":
        t = np.zeros(u.shape, np.float32)
        for k in range(7):
            direction = k * 2.4 + phase[0]
            wavelength = 0.09 + 0.035 * k
            t += (0.00012 * np.sin(2 * math.pi * (u * math.cos(direction) + v * math.sin(direction)) / wavelength
                                   + phase[1] * (k + 1))).astype(np.float32)
        return t
    if face == "top":
        t = (0.00035 * np.sin(2 * math.pi * v / 0.21 + phase[0]) + 0.00025 * np.sin(2 * math.pi * v / 0.077 + phase[1])
             + 0.0002 * np.sin(2 * math.pi * (v + 0.05 * u) / 0.5 + phase[1]))
    else:
        t = 0.0005 * np.sin(2 * math.pi * u / 0.8 + phase[0]) + 0.0002 * np.sin(2 * math.pi * v / 0.13 + phase[1])
    return t.astype(np.float32)


def _crack_offset(defect: Defect, along: np.ndarray) -> np.ndarray:
    """The crack's centreline: across-offset as a function of the position along it, a slow bend plus
    a zigzag, with phases fixed by the defect so a crack looks the same in every shot."""
    phase = (defect.id * 1.7 + defect.u_mm * 3.1 + defect.v_mm * 5.3) % (2 * math.pi)
    t = along / max(defect.length_mm, 1e-6)
    return crack_meander_mm(defect) * (0.65 * np.sin(2 * math.pi * 0.9 * t + phase)
                                       + 0.35 * np.sin(2 * math.pi * 3.7 * t + 2.3 * phase))


def _reach_mm(defect: Defect) -> float:
    if defect.kind == "fibre" or defect.variant == "dig":
        return math.hypot(defect.length_mm / 2, across_half_mm(defect))
    return 0.5 * math.hypot(defect.length_mm, defect.width_mm) + (defect.length_mm if defect.kind == "burr" else 0.0)


def _draw_defect(d: Defect, face, u, v, px, height, albedo, specular, scatter, inside) -> None:
    """Add one defect's relief / reflectance to the maps, in place, within its window."""
    du, dv = u - d.u_mm, v - d.v_mm
    ca, sa = math.cos(math.radians(d.angle_deg)), math.sin(math.radians(d.angle_deg))
    along, across = du * ca + dv * sa, -du * sa + dv * ca
    if draw_look(d, u, v, px, height, albedo, specular, scatter):
        return
    if d.kind == "scratch":
        width = max(d.width_mm, 1.5 * px)  # area-preserving: a sub-pixel groove spreads over a pixel
        depth = d.depth_mm * d.width_mm / width
        q = np.clip(1 - (2 * across / width) ** 2, 0, None)
        taper = np.clip((d.length_mm / 2 - np.abs(along)) / width + 0.5, 0, 1)
        height -= (depth * q * taper).astype(np.float32)
        scatter += (0.35 * (q > 0) * taper * min(1.0, d.width_mm / width + 0.3)).astype(np.float32)
    elif d.kind == "crack":  # a V-shaped fissure along a meandering line, dark inside (oxide, shadow)
        width = max(d.width_mm, 1.5 * px)
        depth = d.depth_mm * d.width_mm / width
        q = np.clip(1 - np.abs(2 * (across - _crack_offset(d, along)) / width), 0, None)
        taper = np.clip((d.length_mm / 2 - np.abs(along)) / (4 * width) + 0.25, 0, 1)
        height -= (depth * q * taper).astype(np.float32)
        albedo *= (1 - 0.35 * q * taper * min(1.0, d.width_mm / width + 0.3)).astype(np.float32)
    elif d.kind == "dent":
        radius = max(d.length_mm / 2, 1.0 * px)
        depth = d.depth_mm * (d.length_mm / 2 / radius) ** 2
        height -= (depth * np.clip(1 - (du * du + dv * dv) / radius ** 2, 0, None)).astype(np.float32)
    elif d.kind == "stain":
        w = np.exp(-2 * ((2 * along / d.length_mm) ** 2 + (2 * across / d.width_mm) ** 2)).astype(np.float32)
        albedo *= 1 - 0.45 * w
        specular *= 1 - 0.6 * w
    elif d.kind == "dust":
        radius = max(d.length_mm / 2, 0.7 * px)
        cover = (d.length_mm / 2 / radius) ** 2
        speck = (du * du + dv * dv < radius ** 2).astype(np.float32) * cover
        specular *= 1 - 0.85 * speck
        albedo *= 1 - 0.3 * speck
        scatter += 0.7 * speck
    elif d.kind == "machining_mark":
        band = (np.abs(along) <= d.length_mm / 2) & (np.abs(across) <= d.width_mm / 2)
        fade = np.clip((d.length_mm / 2 - np.abs(along)) / 0.3, 0, 1)
        height += (d.depth_mm * np.sin(2 * math.pi * across / 0.12) * band * fade).astype(np.float32)
    elif d.kind == "burr":
        # A lump of material pushed out over the edge nearest to its position.
        on_u_edge = abs(abs(d.v_mm) - face.half_v) < abs(abs(d.u_mm) - face.half_u)
        if on_u_edge:
            outward = math.copysign(1, d.v_mm)
            pa, pb = du, (v - d.v_mm) * outward  # along the edge, outward distance
        else:
            outward = math.copysign(1, d.u_mm)
            pa, pb = dv, (u - d.u_mm) * outward
        reach = d.width_mm
        blob = ((2 * pa / d.length_mm) ** 2 + ((pb - reach * 0.2) / reach) ** 2) < 1
        ripple = 0.5 + 0.5 * np.sin(pa * 97.0) * np.cos(pb * 131.0)
        grown = blob & ~inside
        inside |= blob
        height[:] = np.where(blob, (-CHAMFER_MM * 0.5 + d.depth_mm * ripple).astype(np.float32), height)
        scatter += (0.6 * blob).astype(np.float32)
        specular *= np.where(blob, 0.35, 1.0).astype(np.float32)
        albedo *= np.where(grown, 0.9, 1.0).astype(np.float32)


def _slopes(height: np.ndarray, px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=1) * (0.5 / px)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=1) * (0.5 / px)
    tilt = np.degrees(np.arctan(np.sqrt(gx * gx + gy * gy)))
    return tilt, gx, gy


# -- light --------------------------------------------------------------------------------------
def _shade(role: str, tilt, gx, gy, albedo, specular, scatter, solid, opaque) -> np.ndarray:
    if role == "backlight":  # bright wherever light passes: around the part and through its through-holes
        return (1 - opaque).astype(np.float32)
    background = BACKGROUND * (1 - solid)
    if role == "coaxial":
        surface = specular * albedo * np.exp(-(tilt / 7.0) ** 2) + 0.06 * albedo + 0.1 * scatter
    elif role == "low_angle":
        ramp = np.clip((tilt - 3.0) / 22.0, 0, 1)
        surface = albedo * (0.04 + 0.85 * ramp * ramp * (3 - 2 * ramp)) + 0.55 * scatter
    elif role == "ring":
        surface = albedo * (0.3 + 0.45 * np.exp(-((tilt - 22.0) / 10.0) ** 2)) + 0.3 * scatter + 0.15 * specular * albedo * np.exp(-(tilt / 7.0) ** 2)
    else:
        azimuth = math.radians(SEGMENT_AZIMUTH_DEG[role])
        elevation = math.radians(SEGMENT_ELEVATION_DEG)
        lx, ly, lz = math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)
        norm = np.sqrt(gx * gx + gy * gy + 1)
        surface = albedo * 0.9 * np.clip((-gx * lx - gy * ly + lz) / norm, 0, None) + 0.2 * scatter
    return (surface * solid + background).astype(np.float32)


# -- camera -------------------------------------------------------------------------------------
def expose(irradiance: np.ndarray, camera: CameraSpec, defocus_mm: float, exposure_us: float, gain: float,
           seed: int) -> np.ndarray:
    """The camera model on its own (for other scenes, e.g. the calibration target): irradiance
    (H×W, 1.0 = a perfect mirror under 100 % coaxial) → 8-bit frame with defocus, PSF, vignetting, noise."""
    return _camera(irradiance, camera, defocus_mm, exposure_us, gain, seed)


def _camera(irradiance: np.ndarray, camera: CameraSpec, defocus_mm: float, exposure_us: float, gain: float,
            seed: int) -> np.ndarray:
    signal = irradiance * (FULL_SCALE * exposure_us / REFERENCE_EXPOSURE_US * gain)
    blur = max(0.0, abs(defocus_mm) - camera.depth_of_field_mm) * camera.blur_px_per_mm
    sigma = math.hypot(camera.psf_sigma_px, min(blur, 40.0))
    signal = cv2.GaussianBlur(signal, (0, 0), sigma)
    signal *= _vignette(signal.shape, camera.vignetting)
    rng = np.random.default_rng(seed & 0xFFFFFFFF)
    noise_sigma = np.sqrt(np.maximum(signal, 0) / camera.electrons_per_level * gain + camera.read_noise ** 2)
    signal += rng.standard_normal(signal.shape, dtype=np.float32) * noise_sigma.astype(np.float32)
    return np.clip(signal + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def _vignette(shape: tuple[int, int], vignetting: float) -> np.ndarray:
    """The lens' fall-off towards the corners, per pixel (the same for every frame of a camera)."""
    h, w = shape
    yy, xx = np.ogrid[:h, :w]
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    falloff = (1 - vignetting * r2 / 2).astype(np.float32)
    falloff.flags.writeable = False
    return falloff


# -- ground truth and windows ---------------------------------------------------------------------
def _footprint(defect: Defect) -> list[tuple[float, float]]:
    """Corners of the defect's footprint in face coordinates (burrs include their protrusion)."""
    if defect.kind == "burr":
        face = FACE_TABLE[defect.face]
        half = defect.length_mm / 2
        out = defect.width_mm * 1.2
        if abs(abs(defect.v_mm) - face.half_v) < abs(abs(defect.u_mm) - face.half_u):
            s = math.copysign(1, defect.v_mm)
            return [(defect.u_mm - half, defect.v_mm - 0.1 * s), (defect.u_mm + half, defect.v_mm + out * s)]
        s = math.copysign(1, defect.u_mm)
        return [(defect.u_mm - 0.1 * s, defect.v_mm - half), (defect.u_mm + out * s, defect.v_mm + half)]
    ca, sa = math.cos(math.radians(defect.angle_deg)), math.sin(math.radians(defect.angle_deg))
    hl, hw = defect.length_mm / 2, across_half_mm(defect)
    return [(defect.u_mm + a * ca - b * sa, defect.v_mm + a * sa + b * ca) for a in (-hl, hl) for b in (-hw, hw)]


def _pixel_box(camera, pose, part, face, points) -> tuple[float, float, float, float]:
    pts = [face_to_pixel(camera, pose, face, pu, pv, part.fixture_error) for pu, pv in points]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def _truth_box(camera, pose, part, defect: Defect) -> TruthBox | None:
    x0, y0, x1, y1 = _pixel_box(camera, pose, part, defect.face, _footprint(defect))
    pad = 0.5
    bx0, by0 = max(0, math.floor(x0 - pad)), max(0, math.floor(y0 - pad))
    bx1, by1 = min(camera.width_px, math.ceil(x1 + pad)), min(camera.height_px, math.ceil(y1 + pad))
    if bx1 <= bx0 or by1 <= by0:
        return None
    return TruthBox(defect.id, defect.kind, defect.is_nuisance, (bx0, by0, bx1, by1), defect.size_mm, defect.face,
                    defect.u_mm, defect.v_mm)


def _window(camera, pose, part, face, cu, cv, ru, rv) -> tuple[slice, slice] | None:
    x0, y0, x1, y1 = _pixel_box(camera, pose, part, face, [(cu - ru, cv - rv), (cu + ru, cv + rv), (cu - ru, cv + rv),
                                                           (cu + ru, cv - rv)])
    bx0, by0 = max(0, int(math.floor(x0)) - 2), max(0, int(math.floor(y0)) - 2)
    bx1, by1 = min(camera.width_px, int(math.ceil(x1)) + 2), min(camera.height_px, int(math.ceil(y1)) + 2)
    if bx1 <= bx0 or by1 <= by0:
        return None
    return slice(by0, by1), slice(bx0, bx1)
