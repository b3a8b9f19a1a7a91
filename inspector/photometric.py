"""Photometric stereo: surface normals, albedo and curvature from frames taken at one pose under
segment lights from known directions.

Per pixel the Lambertian model says I_k = ρ · (n · l_k) for each light k, with l_k the unit vector
towards the light and n the unit surface normal. With three or more lights not in one plane,
g = ρ·n is the least-squares solution of L g = I (L: one row per light), ρ = |g|, n = g / ρ.
From n the surface slopes are p = −n_x/n_z and q = −n_y/n_z (height change per pixel step, here
per mm), and the curvature image is their divergence ∂p/∂x + ∂q/∂y (the Laplacian of the height,
1/mm): near zero on flat or evenly sloped metal; positive in a groove, pit or dent, negative on a
ridge or raised burr — whatever the light does to the polarity of the grey levels.

A pixel is not measured (``valid`` False) where a frame is saturated or where any light leaves it in
shadow (too dark to tell the slope from noise); callers must not read a verdict from those pixels.

Directions are in image axes: azimuth from the image's +x (column) axis towards its +y (row) axis,
elevation from the image plane towards the camera. The station config gives them per segment
channel; the virtual cell's are in hardware.sim.render (SEGMENT_AZIMUTH_DEG, SEGMENT_ELEVATION_DEG).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

SATURATED = 250  # grey level at and above which a frame no longer measures light
MIN_SIGNAL = 6.0  # grey levels: below this in any frame a pixel is in shadow (noise dominates)


class PhotometricError(ValueError):
    pass


@dataclass(frozen=True)
class LightDirection:
    azimuth_deg: float
    elevation_deg: float

    def vector(self) -> np.ndarray:
        az, el = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


@dataclass(frozen=True)
class SurfaceMaps:
    albedo: np.ndarray      # float32, grey levels per unit of n·l
    normals: np.ndarray     # float32 H×W×3, unit vectors (x, y, z)
    curvature: np.ndarray   # float32, 1/mm (Laplacian of the height); 0 where not valid
    valid: np.ndarray       # bool: every frame neither saturated nor in shadow
    residual: np.ndarray    # float32, RMS misfit of the Lambertian model in grey levels

    def curvature_image(self, full_scale_per_mm: float = 2.0) -> np.ndarray:
        """8-bit view of the curvature: 128 = flat, brighter = concave (groove, pit), darker = convex."""
        scaled = 128.0 + 127.0 * np.clip(self.curvature / full_scale_per_mm, -1.0, 1.0)
        return np.where(self.valid, scaled, 128.0).astype(np.uint8)


def photometric_stereo(frames: Mapping[str, np.ndarray], directions: Mapping[str, LightDirection],
                       mm_per_px: float, *, smooth_px: float = 1.0) -> SurfaceMaps:
    """Normals, albedo and curvature from one frame per segment light (same pose, same exposure)."""
    names = list(frames)
    if len(names) < 3:
        raise PhotometricError(f"photometric stereo needs frames under at least 3 lights, got {len(names)}: {names}")
    missing = [n for n in names if n not in directions]
    if missing:
        raise PhotometricError(f"photometric stereo: no light direction for {', '.join(missing)}")
    if mm_per_px <= 0:
        raise PhotometricError(f"photometric stereo: mm_per_px must be > 0, got {mm_per_px}")
    shapes = {np.asarray(frames[n]).shape for n in names}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise PhotometricError(f"photometric stereo: frames must be mono images of one size, got {sorted(shapes)}")
    lights = np.stack([directions[n].vector() for n in names])  # K×3
    if np.linalg.matrix_rank(lights, tol=1e-6) < 3:
        raise PhotometricError("photometric stereo: the light directions lie in one plane (normals undetermined)")

    raw = [np.asarray(frames[n]) for n in names]
    valid = np.logical_and.reduce([(f < SATURATED) & (f >= MIN_SIGNAL) for f in raw])
    stack = np.stack([cv2.GaussianBlur(f.astype(np.float32), (0, 0), smooth_px) if smooth_px > 0 else f.astype(np.float32)
                      for f in raw])  # K×H×W
    k, h, w = stack.shape
    intensities = stack.reshape(k, -1)
    g = np.linalg.pinv(lights).astype(np.float32) @ intensities  # 3×N
    albedo = np.sqrt((g * g).sum(axis=0))
    unit = (g / np.maximum(albedo, 1e-6)).reshape(3, h, w)
    normals = np.moveaxis(unit, 0, -1)  # H×W×3, a view
    residual = np.sqrt(((lights.astype(np.float32) @ g - intensities) ** 2).mean(axis=0)).reshape(h, w)

    nz = np.maximum(unit[2], 0.05)
    p = -unit[0] / nz  # dz/dx, dimensionless (mm per mm)
    q = -unit[1] / nz
    curvature = (cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=1) + cv2.Sobel(q, cv2.CV_32F, 0, 1, ksize=1)) * (0.5 / mm_per_px)
    curvature = np.where(valid, curvature, 0.0)  # concave (a groove's floor) positive
    return SurfaceMaps(albedo=albedo.reshape(h, w).astype(np.float32), normals=normals.astype(np.float32),
                       curvature=curvature.astype(np.float32), valid=valid, residual=residual.astype(np.float32))
