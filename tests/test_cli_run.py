"""`inspector run --sim` and `inspector results` as a newcomer runs them, in their own processes."""
import subprocess
import sys



def test_demo_lot_prints_parts_and_summary(tmp_path, recipe):
    db = tmp_path / "results.db"
    run = subprocess.run([sys.executable, "-m", "inspector.cli", "run", "--sim", "--parts", "3", "--speed-factor", "10",
                          "--recipe", str(recipe), "--db", str(db), "--archive", str(tmp_path / "archive")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("detect model detector@") and " on CPU" in lines[0]
    assert sum(line.startswith("SIM-") for line in lines) == 3
    assert any(line.startswith("escape rate: ") and "defective parts passed" in line for line in lines)
    assert any(line.startswith("overkill: ") for line in lines)
    assert any(line.startswith("cycle time (wall): mean") and "p95" in line for line in lines)
    assert lines[-1].startswith("provider: detector on CPU")
    listed = subprocess.run([sys.executable, "-m", "inspector.cli", "results", "--db", str(db)],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.strip().endswith("3 records")
    csv_path = tmp_path / "all.csv"
    subprocess.run([sys.executable, "-m", "inspector.cli", "results", "--db", str(db), "--csv", str(csv_path)],
                   check=True, capture_output=True, timeout=60)
    assert len(csv_path.read_text().splitlines()) == 4
