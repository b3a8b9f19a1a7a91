"""Augmentations that mimic what the optics and the fixture really vary.

Brightness/contrast and gamma (lamp ageing, exposure drift), Gaussian blur (defocus within the
depth of field), sensor noise, and small rotations/shifts (fixture tolerance ±1°, ±0.2 mm).
All work on uint8 mono images with an explicit numpy Generator, so a seed fixes them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Photometric:
    gain: tuple[float, float] = (0.8, 1.2)
    bias: tuple[float, float] = (-12.0, 12.0)
    gamma: tuple[float, float] = (0.85, 1.15)
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    noise_sigma: tuple[float, float] = (0.0, 4.0)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = image.astype(np.float32)
        if rng.random() < self.blur_probability:
            out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(*self.blur_sigma)))
        gamma = float(rng.uniform(*self.gamma))
        out = 255.0 * np.power(np.clip(out, 0, 255) / 255.0, gamma)
        out = out * float(rng.uniform(*self.gain)) + float(rng.uniform(*self.bias))
        sigma = float(rng.uniform(*self.noise_sigma))
        if sigma > 0:
            out += rng.normal(0.0, sigma, out.shape).astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def random_affine(shape: tuple[int, int], rng: np.random.Generator, *, max_rotation_deg: float = 3.0,
                  max_shift_px: float = 3.0, flip: bool = True) -> np.ndarray:
    """A 2×3 matrix: small rotation about the centre, small shift, optional flips."""
    h, w = shape
    angle = float(rng.uniform(-max_rotation_deg, max_rotation_deg))
    matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)
    matrix[:, 2] += rng.uniform(-max_shift_px, max_shift_px, 2)
    if flip:
        flip_matrix = np.eye(3)
        if rng.random() < 0.5:
            flip_matrix[0] = [-1, 0, w - 1]
        if rng.random() < 0.5:
            flip_matrix[1] = [0, -1, h - 1]
        matrix = (np.vstack([matrix, [0, 0, 1]]) @ flip_matrix)[:2]
    return matrix.astype(np.float32)


def warp_image(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Move each box's centre with the warp and keep its size (rotations here are a few degrees)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return boxes
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 - 0.5, (boxes[:, 1] + boxes[:, 3]) / 2 - 0.5
    nx = matrix[0, 0] * cx + matrix[0, 1] * cy + matrix[0, 2] + 0.5
    ny = matrix[1, 0] * cx + matrix[1, 1] * cy + matrix[1, 2] + 0.5
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack([nx - w / 2, ny - h / 2, nx + w / 2, ny + h / 2], axis=1)
