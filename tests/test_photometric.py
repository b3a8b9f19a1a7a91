"""Photometric stereo: normals and curvature from segment lights, on a synthetic Lambertian surface
and on the virtual cell's renders (whose segment lights are Lambertian at 40° elevation)."""
import math

import numpy as np
import pytest

from hardware.sim.geometry import FINE_CAMERA, face_point_pose
from hardware.sim.part import Defect, make_part
from hardware.sim.render import SEGMENT_AZIMUTH_DEG, SEGMENT_ELEVATION_DEG, render
from inspector.photometric import LightDirection, PhotometricError, photometric_stereo

DIRECTIONS = {role: LightDirection(az, SEGMENT_ELEVATION_DEG) for role, az in SEGMENT_AZIMUTH_DEG.items()}


def lambertian(height: np.ndarray, px_mm: float, albedo: float = 180.0) -> dict[str, np.ndarray]:
    gy, gx = np.gradient(height, px_mm)
    norm = np.sqrt(gx * gx + gy * gy + 1)
    out = {}
    for role, d in DIRECTIONS.items():
        lx, ly, lz = d.vector()
        out[role] = albedo * np.clip((-gx * lx - gy * ly + lz) / norm, 0, None)
    return out


def test_a_tilted_plane_and_a_groove_come_back_with_their_slope_and_curvature():
    px = 0.01
    y, x = np.mgrid[0:120, 0:160] * px
    tilt = math.tan(math.radians(10))
    groove = -0.02 * np.exp(-((x - 0.8) ** 2) / (2 * 0.05 ** 2))  # 20 µm deep, σ 50 µm, along y
    maps = photometric_stereo(lambertian(tilt * x + groove, px), DIRECTIONS, px, smooth_px=0)
    assert maps.valid.all()
    far = (slice(10, 110), slice(130, 150))  # flat-tilted region away from the groove
    assert np.degrees(np.arccos(maps.normals[far][..., 2])).mean() == pytest.approx(10.0, abs=0.2)
    assert maps.albedo[far].mean() == pytest.approx(180.0, rel=0.01)
    assert abs(maps.curvature[far]).max() < 0.05
    centre = maps.curvature[10:110, 78:82].mean()
    assert centre > 5.0  # the analytic Laplacian at the floor is d/σ² = 8 /mm
    assert maps.curvature[10:110, 88:96].mean() < 0  # the groove's shoulders are convex
    ridge = photometric_stereo(lambertian(-groove, px), DIRECTIONS, px, smooth_px=0)
    assert ridge.curvature[10:110, 78:82].mean() < -5.0  # a ridge: same shape, opposite sign


def test_shadowed_or_saturated_pixels_are_not_measured_and_bad_inputs_are_refused():
    flat = {role: np.full((20, 20), 120.0) for role in DIRECTIONS}
    flat["seg_e"][:5] = 2.0  # in shadow
    flat["seg_w"][-5:] = 255.0  # saturated
    maps = photometric_stereo(flat, DIRECTIONS, 0.01, smooth_px=0)
    assert not maps.valid[:5].any() and not maps.valid[-5:].any() and maps.valid[5:15].all()
    assert (maps.curvature[~maps.valid] == 0).all()
    with pytest.raises(PhotometricError, match="at least 3 lights"):
        photometric_stereo({"seg_n": flat["seg_n"], "seg_e": flat["seg_e"]}, DIRECTIONS, 0.01)
    with pytest.raises(PhotometricError, match="no light direction for seg_x"):
        photometric_stereo({**flat, "seg_x": flat["seg_n"]}, DIRECTIONS, 0.01)
    coplanar = {r: LightDirection(az, 0.0) for r, az in SEGMENT_AZIMUTH_DEG.items()}
    with pytest.raises(PhotometricError, match="in one plane"):
        photometric_stereo(flat, coplanar, 0.01)
    with pytest.raises(PhotometricError, match="one size"):
        photometric_stereo({**flat, "seg_n": np.zeros((10, 10))}, DIRECTIONS, 0.01)


def test_a_dent_in_the_virtual_cell_is_concave_and_flat_metal_is_not():
    dent = Defect(0, "dent", "top", 8.0, -6.0, 0.4, 0.4, 0.03)
    part = make_part(5, defects=(dent,), fixture_error=(0.0, 0.0, 0.0))
    pose = face_point_pose("top", dent.u_mm, dent.v_mm, FINE_CAMERA)
    frames = {role: render(part, pose, {role: 100.0}, FINE_CAMERA, exposure_us=3000.0).image for role in DIRECTIONS}
    maps = photometric_stereo(frames, DIRECTIONS, FINE_CAMERA.mm_per_px, smooth_px=2.0)
    h, w = maps.curvature.shape
    c = maps.curvature[h // 2 - 5:h // 2 + 5, w // 2 - 5:w // 2 + 5]
    flat = maps.curvature[400:560, 560:760]  # brushed metal, away from the dent and the holes
    assert maps.valid[h // 2 - 5:h // 2 + 5, w // 2 - 5:w // 2 + 5].all() and maps.valid[400:560, 560:760].all()
    assert c.mean() > 5 * max(abs(flat.mean()), flat.std())  # measured: 3.5 /mm against a texture σ of 0.28 /mm
    assert np.degrees(np.arccos(maps.normals[400:560, 560:760, 2])).mean() < 3.0  # the top face faces the camera
