"""Measurement system analysis: the AIAG ANOVA gauge R&R recovers known variance components, the
agreement figures count what they say, and `inspector msa` runs a study on the station's own cycle."""
import json
import math

import numpy as np
import pytest

from inspector.msa import attribute_agreement, bias, cohen_kappa, fleiss_kappa, gauge_rr


def synthetic(parts=30, appraisers=3, trials=4, sd_part=0.02, sd_appr=0.002, sd_rep=0.001, seed=0):
    rng = np.random.default_rng(seed)
    return (10.0 + rng.normal(0, sd_part, (parts, 1, 1)) + rng.normal(0, sd_appr, (1, appraisers, 1))
            + rng.normal(0, sd_rep, (parts, appraisers, trials)))


def test_gauge_rr_recovers_the_components():
    y = synthetic(parts=200, appraisers=8, trials=5)
    grr = gauge_rr(y, tolerance_width=0.1)
    assert grr.ev == pytest.approx(0.001, rel=0.08)
    assert grr.av == pytest.approx(0.002, rel=0.5)  # 8 appraisers: a rough estimate of their spread
    assert grr.pv == pytest.approx(0.02, rel=0.15)
    assert grr.grr == pytest.approx(math.hypot(grr.ev, grr.av))
    assert grr.percent_tolerance == pytest.approx(100 * 6 * grr.grr / 0.1)
    assert grr.ndc == int(1.41 * grr.pv / grr.grr)


def test_gauge_rr_of_one_appraiser_has_no_reproducibility():
    y = synthetic(appraisers=1)
    grr = gauge_rr(y, 0.1)
    assert grr.av == 0.0 and grr.ev == pytest.approx(np.sqrt(((y - y.mean(axis=2, keepdims=True)) ** 2).sum()
                                                            / (30 * 1 * 3)))
    with pytest.raises(ValueError, match="missing"):
        gauge_rr(np.where(np.eye(30, 12)[:, None, :4] > 0, np.nan, y), 0.1)
    with pytest.raises(ValueError, match="≥ 2 trials"):
        gauge_rr(y[:, :, :1], 0.1)


def test_bias_against_the_reference():
    y = np.array([[[1.002, 1.004]], [[2.0, 2.0]]])
    b = bias(y, [1.0, 2.0])
    assert b.mean == pytest.approx(0.0015) and b.worst_part == pytest.approx(0.003) and b.measurements == 4


def test_kappas_and_agreement():
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == pytest.approx(1.0)
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == pytest.approx(0.0)
    assert math.isnan(cohen_kappa([True, True], [True, True]))
    assert fleiss_kappa(np.array([[True, True], [False, False]])) == pytest.approx(1.0)
    verdicts = [["PASS", "PASS", "PASS"], ["FAIL", "FAIL", "ERROR"], ["PASS", "FAIL", "PASS"]]
    a = attribute_agreement(verdicts, ["PASS", "FAIL", "PASS"])
    assert (a.parts, a.decisions, a.errors) == (3, 9, 1)
    assert a.self_agreeing_parts == 2 and a.truth_agreeing_parts == 2 and a.truth_agreeing_decisions == 8


def test_msa_needs_the_virtual_cell(capsys):
    from inspector.cli import main

    assert main(["msa", "--parts", "2"]) == 2
    assert "pass --sim" in capsys.readouterr().err
    assert main(["msa", "--sim", "--repeats", "1"]) == 2
    assert "--repeats must be at least 2" in capsys.readouterr().err


def test_msa_study_on_the_cycle(tmp_path, recipe, capsys):
    from inspector.cli import main

    out = tmp_path / "msa"
    assert main(["msa", "--sim", "--parts", "2", "--repeats", "2", "--sessions", "1", "--recipe", str(recipe),
                 "--speed-factor", "200", "--json", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = {r["feature"]: r for r in summary["features"]}
    assert rows["length"]["measurements"] == 4 and rows["length"]["missing"] == 0
    assert abs(rows["length"]["bias_um"]) < 5 and rows["length"]["av_um"] == 0.0
    assert summary["attribute"]["decisions"] == 4
    assert all(d["truth"] in ("PASS", "FAIL") for d in summary["attribute"]["disagreements"])
    text = (out / "report.md").read_text()
    assert "| length |" in text and "Cohen" in text and (out / "report.json").is_file()
