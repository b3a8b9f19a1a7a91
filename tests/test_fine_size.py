"""Defect size from the fine image (inspector.fine_size): measured on virtual-cell frames of defects
with a known physical size, under the reference recipe's fine light program.

Tolerance: within 0.03 mm or 25 % of the true size, whichever is larger (the coarse box at
0.05 mm/px cannot do better than ±0.05 mm). The accuracy study over many defects is
`python -m inspector.bench.fine_size`."""
import numpy as np
import pytest

from hardware.sim.geometry import FINE_CAMERA, face_point_pose
from hardware.sim.part import make_part
from inspector.bench.fine_size import REFERENCE_RECIPE, ShotProgram, render_fine, truth_case
from inspector.fine_size import FineSize, measure_defect
from inspector.recipe import Recipe

MM_PER_PX = FINE_CAMERA.mm_per_px


@pytest.fixture(scope="module")
def program():
    return ShotProgram.fine(Recipe.load(REFERENCE_RECIPE))


def tolerance(true_mm: float) -> float:
    return max(0.03, 0.25 * true_mm)


def scaled(box, factor: float, shift=(0.0, 0.0)):
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2 + shift[0], (y0 + y1) / 2 + shift[1], (x1 - x0) * factor / 2, (y1 - y0) * factor / 2
    return cx - hw, cy - hh, cx + hw, cy + hh


@pytest.mark.parametrize("kind", ["scratch", "dent", "burr", "stain"])
@pytest.mark.parametrize("size_mm, seed", [(0.08, 4200), (0.1, 4201), (0.12, 4202), (0.3, 4203), (0.7, 4204)])
def test_measured_size_is_within_tolerance_of_truth(program, kind, size_mm, seed):
    case = truth_case(seed, kind, size_mm, program, face="top")
    found = measure_defect(case.frame, case.box_px, MM_PER_PX, kind)
    assert isinstance(found, FineSize), f"{kind} {size_mm} mm not found"
    assert abs(found.size_mm - case.true_mm) <= tolerance(case.true_mm), (kind, case.true_mm, found)
    assert not found.clipped
    # the blob's box lies on the defect's footprint
    tx0, ty0, tx1, ty1 = case.truth_box_px
    bx0, by0, bx1, by1 = found.box_px
    assert bx0 < tx1 and tx0 < bx1 and by0 < ty1 and ty0 < by1


@pytest.mark.parametrize("kind, face", [("dent", "north"), ("scratch", "east"), ("stain", "south")])
def test_side_faces_measure_too(program, kind, face):
    case = truth_case(4300, kind, 0.25, program, face=face)
    found = measure_defect(case.frame, case.box_px, MM_PER_PX, kind)
    assert found is not None and abs(found.size_mm - case.true_mm) <= tolerance(case.true_mm), found


@pytest.mark.parametrize("kind", ["scratch", "dent", "burr"])
def test_size_comes_from_the_pixels_not_from_the_box(program, kind):
    """The box mapped from the coarse frame is often 2× off and a few px shifted: the size must not
    follow it (a size read off the box would double or halve here)."""
    case = truth_case(4203, kind, 0.3, program, face="top")
    sizes = [measure_defect(case.frame, scaled(case.box_px, factor, shift), MM_PER_PX, kind).size_mm
             for factor, shift in ((1.0, (0, 0)), (2.0, (0, 0)), (0.5, (0, 0)), (2.0, (-8, 5)), (0.5, (6, -6)))]
    assert max(sizes) - min(sizes) <= 0.02, sizes
    assert abs(sizes[0] - case.true_mm) <= tolerance(case.true_mm)


def test_clean_patches_give_none(program):
    """Nothing there: a flat spot, a spot on the part's edge (chamfer band and the dark surround
    beyond it are background, not a defect), a hole's rim and a hole."""
    part = make_part(77, defect_probability=0.0, max_nuisances=0)
    frame, _ = render_fine(part, "top", 5.0, 3.0, program, seed=77)
    assert measure_defect(frame, (390, 290, 410, 310), MM_PER_PX) is None
    assert measure_defect(frame, (300, 200, 500, 400), MM_PER_PX, "stain") is None
    edge, _ = render_fine(part, "top", 5.0, 14.8, program, seed=78)  # the face ends 0.2 mm beyond the aim
    column = edge[:, 400].astype(int)
    assert column.max() - column.min() > 150  # the frame does show the edge
    assert measure_defect(edge, (385, 300, 415, 330), MM_PER_PX, "burr") is None
    # a hole rim under a candidate's box, and a whole through-hole under a 1 mm box
    rim, _ = render_fine(part, "top", 2.2, 2.2, program, seed=79)
    assert measure_defect(rim, (380, 280, 420, 320), MM_PER_PX, "dent") is None
    hole, _ = render_fine(part, "top", 16.1, 10.0, program, seed=80)
    assert measure_defect(hole, (350, 250, 450, 350), MM_PER_PX, "dent") is None


def test_box_partly_outside_the_frame_is_clipped(program):
    case = truth_case(4203, "dent", 0.3, program, face="top")
    x0, y0, x1, y1 = case.truth_box_px
    whole = measure_defect(case.frame, case.box_px, MM_PER_PX, "dent")
    # the same defect near the left border of a cut frame, its box hanging over the border
    left = x0 - 15
    cut = case.frame[:, left:]
    box = (x0 - left - 40, y0, x1 - left, y1)
    near_border = measure_defect(cut, box, MM_PER_PX, "dent")
    assert near_border is not None and not near_border.clipped
    assert near_border.size_mm == pytest.approx(whole.size_mm, abs=0.01)
    # the frame cuts the defect itself: measured, flagged as a lower bound
    cut = case.frame[:, (x0 + x1) // 2:]
    clipped = measure_defect(cut, (-30, y0, x1 - (x0 + x1) // 2, y1), MM_PER_PX, "dent")
    assert clipped is not None and clipped.clipped and clipped.box_px[0] == 0
    # a box wholly outside the frame: nothing imaged there
    assert measure_defect(case.frame, (-80, -60, -20, -10), MM_PER_PX) is None
    assert measure_defect(case.frame, (900, 100, 960, 160), MM_PER_PX) is None


def test_several_channels_give_the_same_size(program):
    """A program of several steps stacks its frames as channels."""
    case = truth_case(4203, "scratch", 0.3, program, face="top")
    one = measure_defect(case.frame, case.box_px, MM_PER_PX, "scratch")
    flat = np.full_like(case.frame, int(np.median(case.frame)))
    stacked = measure_defect(np.dstack([flat, case.frame]), case.box_px, MM_PER_PX, "scratch")
    assert stacked is not None and stacked.size_mm == pytest.approx(one.size_mm, abs=0.01)


@pytest.mark.parametrize("frame, box, mm_per_px, words", [
    (np.zeros((60, 80), np.uint8), (10, 10, 5, 20), 0.01, "box_px"),
    (np.zeros((60, 80), np.uint8), (10, 10, 20), 0.01, "box_px"),
    (np.zeros((60, 80), np.uint8), (10, 10, float("nan"), 20), 0.01, "box_px"),
    (np.zeros((60, 80), np.uint8), (10, 10, 20, 20), 0.0, "mm_per_px"),
    (np.zeros((60,), np.uint8), (10, 10, 20, 20), 0.01, "frame"),
])
def test_bad_input_is_one_line_naming_it(frame, box, mm_per_px, words):
    with pytest.raises(ValueError) as info:
        measure_defect(frame, box, mm_per_px)
    message = str(info.value)
    assert words in message and "\n" not in message
