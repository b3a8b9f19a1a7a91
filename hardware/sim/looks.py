"""The looks within a defect kind (Defect.variant) and the fibre / fingerprint nuisances, as height and
reflectance maps for render.py: the image follows from each light's geometry there, as for every kind.

- scratch "dig": a gouge, narrow and shallow where the tool entered, 3 × as wide and deep where it stopped;
- dent "pit_cluster": 3–7 small pits of drawn depth within the dent's footprint;
- stain "water_mark": a thin rim of mineral residue that scatters (bright under grazing light), a dull centre;
- stain "discoloration": heat tint, a broad soft film of lower albedo, as glossy as the metal;
- fibre: a thin curved strand lying on the surface, raised and matte, with a slight shadow;
- fingerprint: a faint oval of ridges of skin oil, slightly less specular.
Length stays the longest extent of the damage for every look (Defect.size_mm, the verdict's size).
"""
from __future__ import annotations

import math
import random

import numpy as np

from .part import Defect


def crack_meander_mm(defect: Defect) -> float:
    """How far a crack's centreline wanders to either side of its straight line."""
    return 0.08 * defect.length_mm


def fibre_bend_mm(defect: Defect) -> float:
    """How far a fibre's middle bows out of the straight line between its ends."""
    return 0.15 * defect.length_mm


def _fibre_offset(defect: Defect, along: np.ndarray) -> np.ndarray:
    t = np.clip(2 * along / max(defect.length_mm, 1e-6), -1, 1)
    side = 1.0 if defect.id % 2 == 0 else -1.0
    return side * fibre_bend_mm(defect) * (1 - t * t) + 0.03 * defect.length_mm * np.sin(3.0 * t + defect.u_mm)


def across_half_mm(defect: Defect) -> float:
    """Half the footprint across the defect's length: its width plus what its variant adds."""
    extra = {"crack": crack_meander_mm(defect), "fibre": fibre_bend_mm(defect) + 0.03 * defect.length_mm}.get(defect.kind, 0.0)
    if defect.variant == "dig":
        extra = defect.width_mm / 4  # 1.5 × its width at its broad end
    return defect.width_mm / 2 + extra


def pit_cluster(defect: Defect) -> list[tuple[float, float, float, float]]:
    """The 3–7 pits of a pit-cluster dent: (du, dv, radius, depth) within the dent's footprint (diameter
    length_mm), drawn from a generator keyed on the defect so every shot sees the same cluster."""
    rng = random.Random(f"{defect.id}:{defect.face}:{defect.u_mm}:{defect.v_mm}:pits")
    outer = defect.length_mm / 2
    pits = []
    for _ in range(rng.randint(3, 7)):
        radius = outer * rng.uniform(0.15, 0.35)
        reach = rng.random() ** 0.5 * (outer - radius)
        theta = rng.uniform(0, 2 * math.pi)
        # depth in proportion to the pit's own diameter, scattered (gamma, mean 1) about the dent's depth ratio
        depth = defect.depth_mm * min(1.5, max(0.3, rng.gammavariate(4.0, 0.25))) * radius / outer
        pits.append((reach * math.cos(theta), reach * math.sin(theta), radius, depth))
    return pits


def draw_look(d: Defect, u, v, px, height, albedo, specular, scatter) -> bool:
    """Draw `d` if its kind / variant is one of these looks (in place, within its window); False otherwise."""
    du, dv = u - d.u_mm, v - d.v_mm
    ca, sa = math.cos(math.radians(d.angle_deg)), math.sin(math.radians(d.angle_deg))
    along, across = du * ca + dv * sa, -du * sa + dv * ca
    if d.kind == "scratch" and d.variant == "dig":
        # a gouge: narrow and shallow where the tool entered, three times as wide and deep where it stopped
        grow = np.clip(0.5 + along / d.length_mm, 0, 1) + 0.5  # 0.5 .. 1.5 of the width along the length
        true_w = d.width_mm * grow
        width = np.maximum(true_w, 1.5 * px)
        depth = 1.5 * d.depth_mm * grow * true_w / width
        q = np.clip(1 - (2 * across / width) ** 2, 0, None)
        taper = np.clip((d.length_mm / 2 - np.abs(along)) / width + 0.5, 0, 1)
        height -= (depth * q * taper).astype(np.float32)
        scatter += (0.35 * (q > 0) * taper * np.minimum(1.0, true_w / width + 0.3)).astype(np.float32)
    elif d.kind == "dent" and d.variant == "pit_cluster":
        for pu, pv, radius, depth in pit_cluster(d):
            shown = max(radius, 1.0 * px)
            depth *= (radius / shown) ** 2  # area-preserving for sub-pixel pits
            r2 = (du - pu) ** 2 + (dv - pv) ** 2
            height -= (depth * np.clip(1 - r2 / shown ** 2, 0, None)).astype(np.float32)
    elif d.kind == "stain" and d.variant == "water_mark":
        # a dried drop: mineral residue along the rim scatters light; a thin film dulls the centre a little
        r = np.sqrt((2 * along / d.length_mm) ** 2 + (2 * across / d.width_mm) ** 2)
        rim = np.exp(-((r - 0.85) / 0.12) ** 2).astype(np.float32)
        centre = (np.clip(1 - r / 0.85, 0, 1) ** 0.5).astype(np.float32)
        scatter += 0.3 * rim
        albedo *= 1 - 0.08 * centre - 0.05 * rim
        specular *= 1 - 0.25 * rim - 0.12 * centre
    elif d.kind == "stain" and d.variant == "discoloration":
        # heat tint: a broad soft oxide film, darker (lower albedo) but as glossy as the metal around it
        w = np.exp(-1.2 * ((2 * along / d.length_mm) ** 2 + (2 * across / d.width_mm) ** 2)).astype(np.float32)
        albedo *= 1 - 0.35 * w
    elif d.kind == "fibre":  # a strand lying on the metal: raised, matte, it scatters and casts a slight shadow
        width = max(d.width_mm, 1.5 * px)
        offset = across - _fibre_offset(d, along)
        ends = np.clip((d.length_mm / 2 - np.abs(along)) / width + 0.5, 0, 1)
        q = (np.clip(1 - (2 * offset / width) ** 2, 0, None) * ends).astype(np.float32)
        cover = min(1.0, d.width_mm / width)
        shadow = (np.clip(1 - (2 * (offset - width) / width) ** 2, 0, None) * ends).astype(np.float32)
        height += (d.depth_mm * cover * np.sqrt(q)).astype(np.float32)
        specular *= 1 - 0.8 * cover * q
        albedo *= (1 - 0.2 * cover * q) * (1 - 0.15 * cover * shadow)
        scatter += 0.5 * cover * q
    elif d.kind == "fingerprint":  # a film of skin oil in ridges: slightly less specular, barely any scatter
        r = np.sqrt((2 * along / d.length_mm) ** 2 + (2 * across / d.width_mm) ** 2)
        envelope = np.clip((1 - r) / 0.25, 0, 1).astype(np.float32)
        ridges = (0.5 + 0.5 * np.sin(2 * math.pi * (across + 0.25 * along ** 2 / d.length_mm) / 0.45)).astype(np.float32)
        film = envelope * ridges
        specular *= 1 - 0.12 * film
        albedo *= 1 - 0.02 * film
        scatter += 0.02 * film
    else:
        return False
    return True
