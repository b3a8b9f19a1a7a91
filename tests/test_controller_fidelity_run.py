"""The acceptance check behind `inspector run --sim` with the controller options: against the emulator as
real firmware behaves (whole motor steps, a G54 offset stored in it, 30–200 ms reply latency, one line
garbled on the way in) a lot gets the verdicts the idealised emulator gives."""
import logging

from inspector.demo import run_sim_lot

REALISTIC = {"steps_per_unit": 250.0, "work_offsets": {"G54": (5.0, -3.0, 2.0, 0.0, 0.0)},
             "reply_latency_s": (0.03, 0.2)}


def test_realistic_controller_gives_the_verdicts_of_the_ideal_one(tmp_path, recipe, caplog):

    def lot(name, **options):
        lines = []
        tally = run_sim_lot(3, first_seed=500_003, speed_factor=1000, recipe_path=recipe, db=tmp_path / f"{name}.db",
                            archive_dir=None, out=lines.append, **options)
        return [(record.serial, record.verdict) for record, _ in tally.rows], lines

    ideal, ideal_lines = lot("ideal", motion_options={"ideal": True})
    with caplog.at_level(logging.WARNING, logger="hardware.motion"):
        real, real_lines = lot("real", motion_options=REALISTIC, garble_first_move=True)

    assert len(ideal) == 3 and real == ideal
    assert any(verdict != "ERROR" for _, verdict in ideal)
    assert all(verdict != "ERROR" for (_, verdict), (_, was) in zip(real, ideal) if was != "ERROR")
    header = next(line for line in real_lines if line.startswith("recipe "))
    assert ("controller: 250 steps/unit, G54 offset (5, -3, 2, 0, 0), reply latency 30–200 ms, "
            "first move garbled on the line") in header
    assert "controller: ideal (no step rounding)" in next(line for line in ideal_lines if line.startswith("recipe "))
    assert any("sending the absolute move once more" in r.getMessage() for r in caplog.records)
