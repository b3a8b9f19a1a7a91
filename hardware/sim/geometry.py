"""Geometry of the virtual cell: stage poses, part faces, cameras. Pure functions.

Conventions
- Machine frame: X, Y horizontal, Z up (mm); A rotates the trunnion about machine X, B tilts it
  about machine Y (degrees). A machine point of a part point p (part frame, mm) is
  M = R(a, b) · (Rz(fixture θ) · p + fixture offset) + (x, y, z), with R = Ry(b) · Rx(a).
- Part frame: origin at the part's centre; top face at z = +H/2; north face at +y, south at −y,
  east at +x, west at −x. Each face has in-plane axes (u, v) in mm with the origin at the face
  centre, chosen so that when the face is presented (its normal turned to +Z) u runs along
  machine +X and v along machine +Y.
- Presenting a face: top A=0 B=0; north A=+90; south A=−90; east B=−90; west B=+90.
- Cameras look straight down (−Z). Image x grows with machine +X, image y with machine +Y
  (row 0 at the lowest Y). A camera's optical axis meets the stage plane at `axis_xy`; the
  surface is in focus when it lies at machine height `focal_z` (within ± `depth_of_field_mm`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..pose import StagePose

FACES = ("top", "north", "south", "east", "west")
PART_DIMS_MM = (40.0, 30.0, 8.0)  # length (x), width (y), height (z)


@dataclass(frozen=True)
class CameraSpec:
    name: str
    width_px: int
    height_px: int
    mm_per_px: float
    axis_xy: tuple[float, float]
    focal_z: float
    depth_of_field_mm: float  # half-width: |defocus| up to this is sharp
    blur_px_per_mm: float  # Gaussian sigma (px) per mm of defocus beyond the depth of field
    psf_sigma_px: float  # optics + sensor blur when in focus
    read_noise: float  # grey levels (1 sigma)
    electrons_per_level: float  # shot noise scale: sigma = sqrt(level / this)
    vignetting: float  # relative fall-off at the image corner

    @property
    def field_mm(self) -> tuple[float, float]:
        return (self.width_px * self.mm_per_px, self.height_px * self.mm_per_px)


COARSE_CAMERA = CameraSpec("coarse", 1024, 768, 0.05, (0.0, 0.0), 60.0, 1.0, 6.0, 0.6, 1.5, 4.0, 0.25)
FINE_CAMERA = CameraSpec("fine", 800, 600, 0.01, (60.0, 0.0), 60.0, 0.1, 60.0, 0.7, 1.5, 6.0, 0.15)
CAMERAS = {c.name: c for c in (COARSE_CAMERA, FINE_CAMERA)}


@dataclass(frozen=True)
class Face:
    name: str
    centre: tuple[float, float, float]
    normal: tuple[float, float, float]
    u_axis: tuple[float, float, float]
    v_axis: tuple[float, float, float]
    half_u: float
    half_v: float
    presentation: tuple[float, float]  # (a, b) that turns the normal to +Z


def faces(dims: tuple[float, float, float] = PART_DIMS_MM) -> dict[str, Face]:
    lx, ly, lz = (d / 2 for d in dims)
    return {
        "top": Face("top", (0, 0, lz), (0, 0, 1), (1, 0, 0), (0, 1, 0), lx, ly, (0.0, 0.0)),
        "north": Face("north", (0, ly, 0), (0, 1, 0), (1, 0, 0), (0, 0, -1), lx, lz, (90.0, 0.0)),
        "south": Face("south", (0, -ly, 0), (0, -1, 0), (1, 0, 0), (0, 0, 1), lx, lz, (-90.0, 0.0)),
        "east": Face("east", (lx, 0, 0), (1, 0, 0), (0, 0, -1), (0, 1, 0), lz, ly, (0.0, -90.0)),
        "west": Face("west", (-lx, 0, 0), (-1, 0, 0), (0, 0, 1), (0, 1, 0), lz, ly, (0.0, 90.0)),
    }


FACE_TABLE = faces()


def rotation(a_deg: float, b_deg: float) -> np.ndarray:
    a, b = math.radians(a_deg), math.radians(b_deg)
    ca, sa, cb, sb = math.cos(a), math.sin(a), math.cos(b), math.sin(b)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    return ry @ rx


def fixture_transform(dx: float = 0.0, dy: float = 0.0, dtheta_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    t = math.radians(dtheta_deg)
    rz = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
    return rz, np.array([dx, dy, 0.0])


def visible_face(pose: StagePose, table: dict[str, Face] = FACE_TABLE) -> tuple[str, float]:
    """The face whose normal points most nearly at the camera (+Z), and that cosine."""
    r = rotation(pose.a, pose.b)
    best = max(table.values(), key=lambda f: (r @ np.array(f.normal))[2])
    return best.name, float((r @ np.array(best.normal))[2])


def face_frame(face: str, pose: StagePose, fixture: tuple[float, float, float] = (0.0, 0.0, 0.0),
               table: dict[str, Face] = FACE_TABLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, u direction, v direction) of a face in machine coordinates for a stage pose."""
    f = table[face]
    rz, shift = fixture_transform(*fixture)
    r = rotation(pose.a, pose.b)
    origin = r @ (rz @ np.array(f.centre, float) + shift) + np.array([pose.x, pose.y, pose.z])
    return origin, r @ rz @ np.array(f.u_axis, float), r @ rz @ np.array(f.v_axis, float)


def face_to_machine(face: str, u_mm: float, v_mm: float, pose: StagePose,
                    fixture: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    origin, du, dv = face_frame(face, pose, fixture)
    return origin + u_mm * du + v_mm * dv


def face_to_pixel(camera: CameraSpec, pose: StagePose, face: str, u_mm: float, v_mm: float,
                  fixture: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[float, float]:
    m = face_to_machine(face, u_mm, v_mm, pose, fixture)
    return ((m[0] - camera.axis_xy[0]) / camera.mm_per_px + camera.width_px / 2,
            (m[1] - camera.axis_xy[1]) / camera.mm_per_px + camera.height_px / 2)


def pixel_to_face(camera: CameraSpec, pose: StagePose, px: float, py: float,
                  fixture: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[str, float, float]:
    """The face point seen at pixel (px, py): project along −Z onto the presented face's plane."""
    face, _ = visible_face(pose)
    origin, du, dv = face_frame(face, pose, fixture)
    mx = (px - camera.width_px / 2) * camera.mm_per_px + camera.axis_xy[0]
    my = (py - camera.height_px / 2) * camera.mm_per_px + camera.axis_xy[1]
    jac = np.array([[du[0], dv[0]], [du[1], dv[1]]])
    u, v = np.linalg.solve(jac, np.array([mx - origin[0], my - origin[1]]))
    return face, float(u), float(v)


def face_point_pose(face: str, u_mm: float, v_mm: float, camera: CameraSpec, *, z_offset_mm: float = 0.0,
                    table: dict[str, Face] = FACE_TABLE) -> StagePose:
    """Stage pose that puts face point (u, v) on `camera`'s optical axis, in focus (nominal fixture)."""
    a, b = table[face].presentation
    at_zero = face_to_machine(face, u_mm, v_mm, StagePose(0, 0, 0, a, b))
    return StagePose(round(float(camera.axis_xy[0] - at_zero[0]), 6) + 0.0,
                     round(float(camera.axis_xy[1] - at_zero[1]), 6) + 0.0,
                     round(float(camera.focal_z - at_zero[2] + z_offset_mm), 6), a, b)


def face_view_pose(face: str, camera: CameraSpec, *, z_offset_mm: float = 0.0) -> StagePose:
    """Stage pose that centres a whole face under `camera`, in focus (nominal fixture)."""
    return face_point_pose(face, 0.0, 0.0, camera, z_offset_mm=z_offset_mm)


def pixel_grid_to_face(camera: CameraSpec, pose: StagePose, face: str,
                       fixture: tuple[float, float, float] = (0.0, 0.0, 0.0),
                       window: tuple[int, int, int, int] | None = None,
                       table: dict[str, Face] = FACE_TABLE) -> tuple[np.ndarray, np.ndarray, float]:
    """(u, v) maps (float32, H×W) of every pixel on the face plane, and the plane's mean height."""
    origin, du, dv = face_frame(face, pose, fixture, table)
    x0, y0, x1, y1 = window or (0, 0, camera.width_px, camera.height_px)
    xs = (np.arange(x0, x1, dtype=np.float64) + 0.5 - camera.width_px / 2) * camera.mm_per_px + camera.axis_xy[0] - origin[0]
    ys = (np.arange(y0, y1, dtype=np.float64) + 0.5 - camera.height_px / 2) * camera.mm_per_px + camera.axis_xy[1] - origin[1]
    inv = np.linalg.inv(np.array([[du[0], dv[0]], [du[1], dv[1]]]))
    u = inv[0, 0] * xs[None, :] + inv[0, 1] * ys[:, None]
    v = inv[1, 0] * xs[None, :] + inv[1, 1] * ys[:, None]
    return u.astype(np.float32), v.astype(np.float32), float(origin[2])
