"""Hostile inputs through the real command line (`python -m inspector.cli` in a subprocess): each is
refused with one line on stderr that names the thing and what is wrong, a non-zero exit, no traceback
(unless --debug), and nothing already committed is lost."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.results.records import PartRecord
from inspector.results.sqlite_store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "housing-40x30.recipe.json"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def refused(done: subprocess.CompletedProcess, *words: str, lines: int = 1) -> str:
    """Assert the run failed with `lines` lines on stderr, no traceback, each of `words` said."""
    err = done.stderr.strip()
    assert done.returncode != 0, (done.returncode, done.stdout, err)
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == lines, err
    for word in words:
        assert word in err, (word, err)
    return err


def argparse_refused(done: subprocess.CompletedProcess, *words: str) -> str:
    err = done.stderr.strip()
    assert done.returncode == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]
    for word in words:
        assert word in last, (word, last)
    return last


def recipe_with(folder: Path, name: str, change) -> Path:
    data = json.loads(SHIPPED.read_text())
    data["models"] = {role: str(ROOT / "models" / f"{role}.onnx") for role in ("detector", "classifier")}
    change(data)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def record(i: int) -> PartRecord:
    return PartRecord(part_id=f"P{i:05d}", serial=f"SN{i:05d}", started_at=1_700_000_000 + 3 * i,
                      finished_at=1_700_000_004 + 3 * i, station="cell-01", recipe_id="housing", recipe_version=2,
                      recipe_hash="sha256:r", model_versions={"detector": "1.0", "classifier": "1.1"},
                      provider="CPU", verdict="PASS", reason="", defects=(), timings_s={"total": 3.9},
                      image_paths=())


@pytest.fixture
def db(tmp_path) -> Path:
    """A result store holding three committed parts."""
    path = tmp_path / "results.db"
    with ResultStore(path) as store:
        for i in range(3):
            store.write(record(i))
    return path


def rows(path: Path) -> int:
    with ResultStore(path) as store:
        return len(store.query())


# -- recipes --------------------------------------------------------------------------------------------
def test_binary_recipe(tmp_path):
    path = tmp_path / "binary.recipe.json"
    path.write_bytes(bytes(range(256)) * 8)
    refused(cli("inspect", "--sim", "--recipe", path, "face.png"), "binary.recipe.json", "not UTF-8")


def test_deeply_nested_recipe(tmp_path):
    path = tmp_path / "deep.recipe.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    refused(cli("inspect", "--sim", "--recipe", path, "face.png"), "deep.recipe.json", "nested", "32")


def test_huge_version_is_refused_before_any_part_and_the_store_keeps_its_rows(tmp_path, db):
    path = recipe_with(tmp_path, "version.recipe.json", lambda d: d["recipe"].update(version=2 ** 80))
    err = refused(cli("run", "--sim", "--parts", "1", "--db", db, "--archive", "", "--recipe", path),
                  "version.recipe.json", "recipe.version", "1000000")
    assert len(err) < 300
    assert rows(db) == 3


def test_debug_shows_the_traceback(tmp_path):
    path = recipe_with(tmp_path, "version.recipe.json", lambda d: d["recipe"].update(version=0))
    done = cli("inspect", "--sim", "--recipe", path, "face.png", "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr and "recipe.version" in done.stderr


def test_too_many_views_and_a_megabyte_recipe(tmp_path):
    view = json.loads(SHIPPED.read_text())["views"][0]
    path = recipe_with(tmp_path, "views.recipe.json", lambda d: d.update(views=[dict(view, name=f"v{i}")
                                                                                 for i in range(65)]))
    refused(cli("inspect", "--sim", "--recipe", path, "face.png"), "views.recipe.json", "views", "64")
    huge = tmp_path / "million.recipe.json"
    huge.write_text('{"views": [' + ",".join(['{"name": "v"}'] * 1_000_000) + "]}")
    started = time.monotonic()
    refused(cli("inspect", "--sim", "--recipe", huge, "face.png"), "million.recipe.json", "larger than 1 MB")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("where, key, value, words", [
    ("view", "exposure_us", 1e300, ("views[0].exposure_us", "10.0 to 1e+06")),
    ("reimaging", "gain", 1e12, ("reimaging.gain", "0.1 to 64.0")),
    ("view", "gain", 0.0, ("views[0].gain", "0.1 to 64.0")),
])
def test_camera_settings_out_of_range(tmp_path, where, key, value, words):
    def change(data):
        (data["views"][0] if where == "view" else data["reimaging"])[key] = value
    path = recipe_with(tmp_path, "camera.recipe.json", change)
    refused(cli("inspect", "--sim", "--recipe", path, "face.png"), "camera.recipe.json", *words)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "../models/../../x.onnx"])
def test_model_paths_outside_the_model_folders(tmp_path, name):
    path = recipe_with(tmp_path, "escape.recipe.json", lambda d: d["models"].update(detector=name))
    refused(cli("inspect", "--sim", "--recipe", path, "face.png"), "escape.recipe.json", "models.detector",
            "outside the allowed model folders", name)


def test_a_swapped_model_file_is_refused(tmp_path):
    for item in ("housing-40x30.recipe.json", "detector.onnx", "classifier.onnx", "detector.card.json",
                 "classifier.card.json"):
        shutil.copy(ROOT / "models" / item, tmp_path / item)
    shutil.copy(ROOT / "models" / "classifier.onnx", tmp_path / "detector.onnx")  # the swap
    pinned = json.loads(SHIPPED.read_text())["models"]["detector"]["sha256"]
    from inspector.recipe import file_sha256_hex

    found = file_sha256_hex(tmp_path / "detector.onnx")
    refused(cli("inspect", "--sim", "--recipe", tmp_path / "housing-40x30.recipe.json", "face.png"),
            "detector.onnx", "models.detector.sha256", pinned, found, "changed or swapped")
    # a recipe that pins nothing: the model card beside the file says what it should be
    data = json.loads(SHIPPED.read_text())
    data["models"] = {"detector": "detector.onnx", "classifier": "classifier.onnx"}
    (tmp_path / "unpinned.recipe.json").write_text(json.dumps(data))
    refused(cli("inspect", "--sim", "--recipe", tmp_path / "unpinned.recipe.json", "face.png"),
            "detector.onnx", "detector.card.json", found, "changed or swapped")


# -- station config -------------------------------------------------------------------------------------
def station_toml(tmp_path: Path, name: str, edit) -> Path:
    from hardware.sim.cell import station_config_dict
    from inspector.schema import dump_toml

    data = station_config_dict("/dev/null", "virtual")
    edit(data)
    path = tmp_path / name
    path.write_text(dump_toml(data))
    return path


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["cameras"]["coarse"].update(exposure_us=1e300), ("cameras.coarse.exposure_us", "10.0 to 1e+06")),
    (lambda d: d["cameras"]["fine"].update(gain=1e12), ("cameras.fine.gain", "0.1 to 64.0")),
    (lambda d: d["motion"].update(baudrate=2 ** 80), ("motion.baudrate",)),
])
def test_station_config_out_of_range(tmp_path, edit, words):
    path = station_toml(tmp_path, "station.toml", edit)
    refused(cli("inspect", "--station", path, "face.png"), "station.toml", *words)


def test_binary_and_deep_station_configs(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00" * 100)
    refused(cli("run", "--config", binary, "--db", tmp_path / "r.db"), "binary.toml", "not UTF-8")
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(cli("run", "--config", deep, "--db", tmp_path / "r.db"), "deep.toml", "nested")


# -- images given to `inspector inspect` ----------------------------------------------------------------
def test_tiny_corrupt_and_non_images(tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((1, 1), np.uint8))
    good = cv2.imencode(".png", np.full((300, 400), 128, np.uint8))[1].tobytes()
    (tmp_path / "corrupt.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.png").write_text("not an image")
    names = ("one.png", "corrupt.png", "text.png")
    err = refused(cli("inspect", "--sim", *(tmp_path / n for n in names)), lines=3)
    for line, name, what in zip(err.splitlines(), names, ("too small", "cannot read", "cannot read")):
        assert name in line and what in line, line


# -- result stores -------------------------------------------------------------------------------------
def test_db_that_is_a_directory_or_missing(tmp_path):
    (tmp_path / "folder").mkdir()
    refused(cli("results", "--db", tmp_path / "folder"), "folder", "is a directory")
    refused(cli("run", "--sim", "--parts", "1", "--db", tmp_path / "folder"), "folder", "is a directory")
    refused(cli("results", "--db", tmp_path / "missing" / "dir" / "results.db"), "no result store", "missing")


def test_db_that_is_not_a_database_is_left_alone(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n" * 10)
    refused(cli("results", "--db", other), "notes.txt", "not a SQLite database")
    refused(cli("run", "--sim", "--parts", "1", "--db", other), "notes.txt", "not a SQLite database")
    assert other.read_text() == "my notes\n" * 10


def test_a_good_store_still_reads_after_the_refusals(db):
    done = cli("results", "--db", db)
    assert done.returncode == 0 and "3 records" in done.stdout


@pytest.mark.parametrize("url, words", [
    ("postgresql://op:secret@db-host:99999/results", ("PostgreSQL URL", "malformed", "op:***")),
    ("postgresql://[::1/results", ("PostgreSQL URL", "malformed")),
    ("mysql://db-host/results", ("mysql", "not a result store")),
])
def test_bad_database_urls(url, words):
    err = refused(cli("results", "--db", url), *words)
    assert "secret" not in err


# -- numbers on the command line --------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ("run", "--sim", "--speed-factor", "0"),
    ("run", "--sim", "--speed-factor=-2"),
    ("run", "--sim", "--speed-factor", "nan"),
    ("sim", "--speed-factor", "0"),
    ("bench", "--speed-factor", "nan"),
])
def test_speed_factor_must_be_positive(argv):
    argparse_refused(cli(*argv), "--speed-factor", "positive")


def test_eval_speed_factor_is_checked_by_eval():
    refused(cli("eval", "--speed-factor", "nan"), "--speed-factor must be in", "nan")


def test_missing_station_config_is_one_line(tmp_path):
    refused(cli("run", "--config", tmp_path / "nowhere.toml", "--db", tmp_path / "r.db"), "nowhere.toml",
            "no such file")
