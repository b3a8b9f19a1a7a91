"""The laser-marked Data Matrix that carries a virtual part's serial (direct part marking).

A fibre laser anneals the aluminium under each dark module: the spot turns matte and dark (less
specular, lower albedo) without measurable relief, so the mark changes reflectance only and its
image follows each light like a stain does — dark in coaxial light, nearly invisible to a grazing
ring. The symbol keeps its physical size whatever the text; zxing-cpp builds the module matrix
(ECC 200, smallest square symbol that holds the text).

Where it sits (`MARK_*`): the top face, in the free band between the south-west hole and the
centre bore, clear of the chamfer; defects and nuisances are never placed on it (part.py).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

MARK_FACE = "top"
MARK_CENTRE_MM = (-8.0, -11.4)  # (u, v) on the face
MARK_SIZE_MM = 5.0  # the symbol's side, quiet zone excluded (14 × 14 modules of 0.36 mm for "SIM-nnnnnn":
#                     ~7 px each in the coarse camera)
MARK_QUIET_MM = 0.3  # clear metal kept around the symbol (a module's width; ISO/IEC 16022 asks for one)
MARK_EDGE_MM = 0.025  # edge softness of a module (1 sigma): the laser spot's fall-off
MARK_ALBEDO_LOSS = 0.6  # an annealed module reflects this much less diffusely …
MARK_SPECULAR_LOSS = 0.75  # … and this much less specularly (matte)
MARK_MODULE_VARIATION = 0.12  # module-to-module spread of the darkening (laser power ripple)
_SUPERSAMPLE = 8  # raster points per module before the soft edge is applied


@lru_cache(maxsize=256)
def datamatrix_modules(text: str) -> np.ndarray:
    """The Data Matrix symbol of `text` as a module matrix (bool, True = dark), no quiet zone.
    Row 0 is the symbol's top row as printed, column 0 its left (solid L finder left and bottom)."""
    import zxingcpp  # only the virtual cell's renderer needs it

    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix)
    image = np.asarray(symbol.to_image(scale=1, add_quiet_zones=False))
    if image.ndim == 3:
        image = image[..., 0]
    modules = image < 128
    modules.setflags(write=False)
    return modules


def mark_extent_mm() -> float:
    """Half the side of the square the mark occupies on the face, quiet zone included."""
    return MARK_SIZE_MM / 2 + MARK_QUIET_MM


@lru_cache(maxsize=64)
def _soft_mask(text: str, seed: int) -> tuple[np.ndarray, int]:
    """Darkening (0–1) of the symbol rastered at `_SUPERSAMPLE` points per module with soft edges,
    padded by one module of clear metal; and the module count."""
    modules = datamatrix_modules(text)
    n = modules.shape[0]
    rng = np.random.default_rng(seed & 0xFFFFFFFF)
    strength = modules * (1.0 - MARK_MODULE_VARIATION * rng.random(modules.shape))
    padded = np.pad(strength.astype(np.float32), 1)
    raster = np.kron(padded, np.ones((_SUPERSAMPLE, _SUPERSAMPLE), np.float32))
    sigma = MARK_EDGE_MM / (MARK_SIZE_MM / n) * _SUPERSAMPLE
    raster = cv2.GaussianBlur(raster, (0, 0), max(sigma, 0.3))
    return raster, n


def mark_cover(text: str, seed: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Darkening (0–1) at face points (u, v) mm. The symbol reads unmirrored when the face is
    presented (u → image x, v → image y): its row r lies at increasing v."""
    raster, n = _soft_mask(text, seed)
    module_mm = MARK_SIZE_MM / n
    u0, v0 = MARK_CENTRE_MM[0] - MARK_SIZE_MM / 2, MARK_CENTRE_MM[1] - MARK_SIZE_MM / 2
    # raster index of a face point: one padding module, `_SUPERSAMPLE` points per module, centred samples
    map_x = ((u - u0) / module_mm + 1) * _SUPERSAMPLE - 0.5
    map_y = ((v - v0) / module_mm + 1) * _SUPERSAMPLE - 0.5
    return cv2.remap(raster, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def draw_mark(text: str, seed: int, u: np.ndarray, v: np.ndarray, albedo: np.ndarray, specular: np.ndarray) -> None:
    """Darken the reflectance maps in place where the mark's modules lie (a window of the face)."""
    cover = mark_cover(text, seed, u, v)
    albedo *= (1 - MARK_ALBEDO_LOSS * cover).astype(np.float32)
    specular *= (1 - MARK_SPECULAR_LOSS * cover).astype(np.float32)


def overlaps_mark(face: str, u_mm: float, v_mm: float, clearance_mm: float) -> bool:
    """Whether a point within `clearance_mm` of it would touch the mark (quiet zone included)."""
    if face != MARK_FACE:
        return False
    half = mark_extent_mm() + clearance_mm
    return abs(u_mm - MARK_CENTRE_MM[0]) <= half and abs(v_mm - MARK_CENTRE_MM[1]) <= half


__all__ = ["MARK_FACE", "MARK_CENTRE_MM", "MARK_SIZE_MM", "datamatrix_modules", "mark_extent_mm", "mark_cover",
           "draw_mark", "overlaps_mark"]
