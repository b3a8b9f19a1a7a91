"""The virtual part: a machined aluminium housing with defects of physical size and depth.

Deterministic per seed. True defects (scratch, dent, burr, stain) make a part bad if the recipe
says so; nuisances (dust, machining marks, fibres, fingerprints) are harmless but look like defects to a
careless model. Each defect has a look within its kind (Defect.variant) and each part a surface finish.
Every part carries its serial as a laser-marked Data Matrix on the top face (marking.py); no defect
or nuisance is placed on the mark.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from .geometry import FACE_TABLE, FACES, PART_DIMS_MM
from .marking import overlaps_mark

DEFECT_KINDS = ("scratch", "dent", "burr", "stain")
# fibre and fingerprint are drawn from a generator of their own (extra_nuisances), after the others
NUISANCE_KINDS = ("dust", "machining_mark", "fibre", "fingerprint")
# Kinds the renderer draws only when asked (make_part kinds=..., defects=...): no shipped model has seen
# them, so they stand for the defect kind a plant meets that nobody trained for (teaching a new kind).
NEW_KINDS = ("crack",)
ALL_KINDS = DEFECT_KINDS + NUISANCE_KINDS + NEW_KINDS
FIXTURE_TOLERANCE = (0.2, 0.2, 1.0)  # ± mm, ± mm, ± degrees
# Looks per kind (Defect.variant, "" = the kind's first look): the geometry and size_mm (the longest extent of
# the damage) mean the same for every variant, so the verdict rules do not depend on it.
VARIANTS = {"stain": ("oil", "water_mark", "discoloration"), "dent": ("dent", "pit_cluster"),
            "scratch": ("groove", "dig")}
VARIANT_WEIGHTS = {"stain": (0.5, 0.3, 0.2), "dent": (0.7, 0.3), "scratch": (0.75, 0.25)}
FINISHES = ("brushed", "bead_blasted")  # the part's surface finish (bead blasted: isotropic, more diffuse)
FINISH_WEIGHTS = (0.75, 0.25)
EXTRA_NUISANCE_PROBABILITY = {"fibre": 0.15, "fingerprint": 0.1}  # per part

# Top-face holes: (u, v, radius mm, through?)
HOLES = ((-15.0, -10.0, 1.5, True), (15.0, -10.0, 1.5, True), (-15.0, 10.0, 1.5, True),
         (15.0, 10.0, 1.5, True), (0.0, 0.0, 3.0, False))
CHAMFER_MM = 0.4
# True dimensional variation of the machining (1 sigma, mm): outline length and width, hole diameter, hole
# position. Drawn per part seed from a generator of its own, so a seed's defects stay what they always were.
DIMENSION_SIGMA_MM = {"outline": 0.015, "hole_diameter": 0.008, "hole_position": 0.008}


@dataclass(frozen=True)
class Defect:
    id: int
    kind: str
    face: str
    u_mm: float
    v_mm: float
    length_mm: float  # longest extent
    width_mm: float
    depth_mm: float  # groove/pit depth, burr protrusion height, 0 for stains and dust
    angle_deg: float = 0.0  # direction of the length in the face's (u, v) plane
    variant: str = ""  # the look within the kind (VARIANTS); "" is the kind's first look

    @property
    def is_nuisance(self) -> bool:
        return self.kind in NUISANCE_KINDS

    @property
    def size_mm(self) -> float:
        return max(self.length_mm, self.width_mm)


@dataclass(frozen=True)
class PartInstance:
    serial: str
    seed: int
    defects: tuple[Defect, ...] = ()
    fixture_error: tuple[float, float, float] = (0.0, 0.0, 0.0)  # dx mm, dy mm, dtheta deg
    dims_mm: tuple[float, float, float] = PART_DIMS_MM
    texture_phase: tuple[float, float] = field(default=(0.0, 0.0))
    marked: bool = True  # carries its serial as a laser-marked Data Matrix (hardware.sim.marking)
    holes: tuple[tuple[float, float, float, bool], ...] = HOLES  # true (u, v, radius mm, through?) on the top face
    finish: str = "brushed"  # FINISHES

    @property
    def true_defects(self) -> tuple[Defect, ...]:
        return tuple(d for d in self.defects if not d.is_nuisance)

    @property
    def is_defective(self) -> bool:
        return bool(self.true_defects)


def make_part(seed: int, *, defect_probability: float = 0.5, max_defects: int = 3, max_nuisances: int = 4,
              faces: tuple[str, ...] = FACES, defects: tuple[Defect, ...] | None = None,
              fixture_error: tuple[float, float, float] | None = None,
              kinds: tuple[str, ...] | None = None, marked: bool = True, nominal_dimensions: bool = False) -> PartInstance:
    """A part for `seed`. Pass `defects` (and `fixture_error`) to place them explicitly; `kinds`
    limits which defect kinds are drawn (default all four; e.g. ("dent",) for a part whose only
    true defects are dents — nuisances are drawn as usual). With `kinds` None the part is the same
    as it always was for that seed (the mark aside: a defect drawn onto the mark is drawn again).
    `marked` False: a part without its serial mark. Its true dimensions (outline, holes) vary by tens of µm
    per seed (`true_dimensions`); `nominal_dimensions` True: exactly as drawn.
    Looks (Defect.variant), the surface finish and the fibre / fingerprint nuisances come from generators
    of their own (looks), so the kinds, places, sizes and fixture error a seed has always drawn stay
    exactly as they were; explicit `defects` are kept as given (no nuisances added)."""
    if kinds is not None:
        unknown = [k for k in kinds if k not in DEFECT_KINDS + NEW_KINDS]
        if not kinds or unknown:
            raise ValueError(f"make_part kinds {tuple(kinds)!r}: expected defect kinds among "
                             f"{', '.join(DEFECT_KINDS + NEW_KINDS)}")
    drawn = DEFECT_KINDS if kinds is None else tuple(kinds)
    rng = random.Random(seed * 7919 + 17)
    if fixture_error is None:
        fixture_error = tuple(round(rng.uniform(-t, t), 4) for t in FIXTURE_TOLERANCE)  # type: ignore[assignment]
    phase = (rng.uniform(0, 100), rng.uniform(0, 100))
    if defects is None:
        placed: list[Defect] = []
        if rng.random() < defect_probability:
            for _ in range(rng.randint(1, max_defects)):
                placed.append(random_defect(rng, len(placed), rng.choice(drawn), rng.choice(faces)))
        for _ in range(rng.randint(0, max_nuisances)):
            placed.append(random_defect(rng, len(placed), rng.choice(NUISANCE_KINDS[:2]), rng.choice(faces)))
        placed = [with_variant(seed, d) for d in placed]
        if max_nuisances > 0:
            placed += extra_nuisances(seed, len(placed), faces)
        defects = tuple(placed)
    dims, holes = (PART_DIMS_MM, HOLES) if nominal_dimensions else true_dimensions(seed)
    return PartInstance(serial=f"SIM-{seed:06d}", seed=seed, defects=tuple(defects),
                        fixture_error=fixture_error, texture_phase=phase, marked=marked, dims_mm=dims,
                        holes=holes, finish=surface_finish(seed))  # type: ignore[arg-type]


def surface_finish(seed: int) -> str:
    """The part's finish, from a generator of its own (the part's other draws stay as they were)."""
    return random.Random(f"{seed}:finish").choices(FINISHES, FINISH_WEIGHTS)[0]


def with_variant(seed: int, defect: Defect) -> Defect:
    """`defect` with its look drawn from a generator keyed on (seed, defect id): the defect's geometry is untouched."""
    if defect.kind not in VARIANTS or defect.variant:
        return defect
    rng = random.Random(f"{seed}:{defect.id}:variant")
    return replace(defect, variant=rng.choices(VARIANTS[defect.kind], VARIANT_WEIGHTS[defect.kind])[0])


def extra_nuisances(seed: int, first_id: int, faces: tuple[str, ...] = FACES) -> list[Defect]:
    """Fibres and fingerprints (EXTRA_NUISANCE_PROBABILITY each), from a generator of their own, off the mark.
    A fibre: a thin curved strand lying on the surface (0.5–3 mm long, 10–30 µm thick, as high). A
    fingerprint: a faint oval of ridges in the reflectance, a few mm across, within its face."""
    rng = random.Random(f"{seed}:nuisances")
    out: list[Defect] = []
    for kind, probability in EXTRA_NUISANCE_PROBABILITY.items():
        if rng.random() >= probability:
            continue
        face = rng.choice(faces)
        f = FACE_TABLE[face]
        if kind == "fibre":
            length, width = rng.uniform(0.5, 3.0), rng.uniform(0.01, 0.03)
            depth, angle = width, rng.uniform(0, 180)
        else:
            long_half, short_half = max(f.half_u, f.half_v), min(f.half_u, f.half_v)
            length = min(rng.uniform(4.0, 8.0), 2 * short_half * 1.6, 2 * long_half - 2)
            width = min(length * rng.uniform(0.6, 0.8), 2 * short_half - 1.5)
            depth, angle = 0.0, (0.0 if f.half_u >= f.half_v else 90.0) + rng.uniform(-20, 20)
        half = length / 2
        for _ in range(100):
            u = rng.uniform(-f.half_u + min(half, f.half_u - 0.5), f.half_u - min(half, f.half_u - 0.5))
            v = rng.uniform(-f.half_v + min(half, f.half_v - 0.5), f.half_v - min(half, f.half_v - 0.5))
            if not overlaps_mark(face, u, v, half + 0.3):
                break
        else:
            continue
        out.append(Defect(first_id + len(out), kind, face, round(u, 3), round(v, 3), round(length, 3),
                          round(width, 3), round(depth, 4), round(angle, 1)))
    return out


def true_dimensions(seed: int) -> tuple[tuple[float, float, float], tuple[tuple[float, float, float, bool], ...]]:
    """(length, width, height) and holes of the part `seed` as machined: nominal plus a normal draw of
    DIMENSION_SIGMA_MM, rounded to 0.1 µm (the height is nominal: no view measures it)."""
    rng = random.Random(seed * 104_729 + 31)
    sigma = DIMENSION_SIGMA_MM
    length, width, height = PART_DIMS_MM
    dims = (round(length + rng.gauss(0, sigma["outline"]), 4), round(width + rng.gauss(0, sigma["outline"]), 4), height)
    holes = tuple((round(u + rng.gauss(0, sigma["hole_position"]), 4), round(v + rng.gauss(0, sigma["hole_position"]), 4),
                   round(r + rng.gauss(0, sigma["hole_diameter"]) / 2, 4), through) for u, v, r, through in HOLES)
    return dims, holes


def defect_size(rng: random.Random) -> float:
    """0.05–2 mm, most of the mass in 0.1–0.5 mm (log-normal around 0.25 mm)."""
    while True:
        size = rng.lognormvariate(-1.35, 0.6)
        if 0.05 <= size <= 2.0:
            return round(size, 3)


def random_defect(rng: random.Random, index: int, kind: str, face: str) -> Defect:
    f = FACE_TABLE[face]
    size = defect_size(rng)
    angle = rng.uniform(0, 180)
    margin = CHAMFER_MM + 0.3
    if kind == "burr":  # sits on an edge of the face, protruding outward
        size = min(size, 0.8)
        along_u = rng.random() < 0.5
        sign = rng.choice((-1, 1))
        if along_u:
            u, v = rng.uniform(-f.half_u + 2, f.half_u - 2), sign * f.half_v
        else:
            u, v = sign * f.half_u, rng.uniform(-f.half_v + 1, f.half_v - 1)
        return Defect(index, kind, face, round(u, 3), round(v, 3), size, size * 0.6, round(size * 0.5, 3), 0.0)
    for _ in range(100):
        u = rng.uniform(-f.half_u + margin, f.half_u - margin)
        v = rng.uniform(-f.half_v + margin, f.half_v - margin)
        clear_of_holes = face != "top" or all((u - hu) ** 2 + (v - hv) ** 2 > (r + 0.6 + size) ** 2
                                              for hu, hv, r, _ in HOLES)
        if clear_of_holes and not overlaps_mark(face, u, v, 0.6 + size + (1.5 if kind == "machining_mark" else 0.0)):
            break
    if kind == "scratch":
        length, width, depth = max(size, 0.15), max(0.02, size * rng.uniform(0.08, 0.2)), rng.uniform(0.005, 0.02)
    elif kind == "dent":
        length = width = size
        depth = size * rng.uniform(0.08, 0.2)
    elif kind == "stain":
        length, width, depth = size * 1.5, size * rng.uniform(0.6, 1.2), 0.0
    elif kind == "crack":  # 20–50 µm wide, as deep, meandering (render.crack_meander_mm), dark inside, no scatter
        length, width, depth = max(size, 0.2), rng.uniform(0.02, 0.05), rng.uniform(0.02, 0.05)
    elif kind == "dust":
        length = width = min(size, rng.uniform(0.03, 0.3))
        depth = 0.0
    else:  # machining_mark: a shallow band of periodic tool marks
        length, width, depth = rng.uniform(1.0, 3.0), rng.uniform(0.3, 0.8), rng.uniform(0.001, 0.003)
        length = min(length, 2 * f.half_u - 2 * margin, 2 * f.half_v - 2 * margin) if face != "top" else length
    return Defect(index, kind, face, round(u, 3), round(v, 3), round(length, 3), round(width, 3), round(depth, 4),
                  round(angle, 1))
