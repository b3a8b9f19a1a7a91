"""The machine-model time of a pose sequence (the cycle bench's bounds): hand-computed trapezoids."""
import math

import pytest

from hardware.pose import StagePose
from hardware.sim.dynamics import AxisLimits, Dynamics, move_time_s, plan_time_s

# the virtual cell's defaults: X/Y/Z 400 mm/s, 3000 mm/s²; A/B 360 °/s, 3600 °/s²; settle 30 ms
HOME = StagePose(0.0, 0.0, 40.0, 0.0, 0.0)


def test_one_long_x_move_is_a_trapezoid():
    # ramps of 400/3000 s each cover 2 × 26.67 mm; the remaining 46.67 mm cruise at 400 mm/s
    # t = 100/400 + 400/3000 = 0.38333 s, + 30 ms settle
    assert plan_time_s([HOME, StagePose(100.0, 0.0, 40.0)]) == pytest.approx(0.25 + 0.4 / 3 + 0.030)


def test_a_short_move_is_a_triangle():
    # 10 mm never reaches 400 mm/s: t = 2 √(10 / 3000)
    assert move_time_s(HOME, StagePose(0.0, 10.0, 40.0)) == pytest.approx(2 * math.sqrt(10 / 3000) + 0.030)


def test_the_slowest_axis_governs():
    # X 100 mm takes 0.38333 s; A 90° takes 90/360 + 360/3600 = 0.35 s; A 180° takes 0.6 s
    x_and_a = StagePose(100.0, 0.0, 40.0, 90.0, 0.0)
    assert move_time_s(HOME, x_and_a) == pytest.approx(0.25 + 0.4 / 3 + 0.030)
    assert move_time_s(HOME, StagePose(100.0, 0.0, 40.0, 180.0, 0.0)) == pytest.approx(0.5 + 0.1 + 0.030)


def test_a_sequence_sums_its_moves_and_settles_after_each():
    poses = [HOME, StagePose(100.0, 0.0, 40.0), StagePose(100.0, 10.0, 40.0), (100.0, 10.0, 40.0, 0.0, -45.0)]
    # 0.38333 + 0.11547 + B 45° (just past the 36° a ramp pair covers: 45/360 + 360/3600 = 0.225), three settles
    expected = (0.25 + 0.4 / 3) + 2 * math.sqrt(10 / 3000) + (45 / 360 + 0.1) + 3 * 0.030
    assert plan_time_s(poses) == pytest.approx(expected)
    assert plan_time_s(poses[:1]) == 0.0 and plan_time_s([]) == 0.0


def test_the_machine_model_is_a_parameter():
    slow = AxisLimits(100.0, 1000.0, -100.0, 100.0)
    dynamics = Dynamics(limits=(slow,) * 5, settle_s=0.050)
    # 100 mm at 100 mm/s, 1000 mm/s²: 1.0 + 0.1 s, + 50 ms settle
    assert plan_time_s([HOME, StagePose(100.0, 0.0, 40.0)], dynamics) == pytest.approx(1.15)
    assert Dynamics.of({a: slow for a in "xyzab"}, 0.05) == dynamics
