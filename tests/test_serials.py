"""Serial numbers: the Data Matrix marked on the virtual part decodes to its serial in the coarse
image of the view that shows it; the cycle takes the serial from the PLC, a code reader or the mark
as the station config says; none to be had is ERROR with the reason; a repeat is flagged."""
import json

import pytest

from hardware.sim.barcode_emulator import CodeReaderEmulator
from hardware.sim.cell import VirtualCell
from hardware.sim.geometry import COARSE_CAMERA, face_view_pose
from hardware.sim.part import make_part
from inspector.cycle import InspectionCycle
from inspector.demo import REFERENCE_RECIPE
from inspector.devices import open_devices
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.recipe import Recipe
from inspector.results.sqlite_store import ResultStore
from inspector.schema import ConfigError
from inspector.serials import decode_datamatrix
from inspector.station_config import StationConfig

# a fresh cycle's good part may end ERROR for other reasons (fine focus not yet verified): these tests
# look at the serial and at "serial not read" reasons only
COARSE_LIGHT = {"coaxial": 35, "low_angle": 100, "ring": 10}  # the reference recipe's coarse program


def test_mark_decodes_to_the_serial_in_the_coarse_image_of_the_top_view():
    with VirtualCell(speed_factor=50.0) as cell:
        devices = open_devices(StationConfig.from_dict(cell.station_config_dict()), virtual_cell=cell)
        try:
            devices.motion.home().wait(20)
            devices.camera = devices.cameras["coarse"]
            devices.camera.configure(exposure_us=3000, gain=1.0)
            for face in ("top", "north"):
                devices.motion.move_to(face_view_pose(face, COARSE_CAMERA)).wait(20)
                for seed in (500_000, 500_001, 500_002):
                    part = cell.load_part(make_part(seed))
                    for role, level in COARSE_LIGHT.items():
                        devices.lights.set_level(role, level)
                    frame = devices.camera.snap().image
                    if face == "top":
                        assert decode_datamatrix(frame) == part.serial
                    else:
                        assert decode_datamatrix(frame) is None  # the mark is on the top face only
            devices.motion.move_to(face_view_pose("top", COARSE_CAMERA)).wait(20)
            cell.load_part(make_part(500_003, marked=False))
            assert decode_datamatrix(devices.camera.snap().image) is None
        finally:
            devices.close()


@pytest.fixture
def rig(tmp_path, model_paths):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = Recipe.from_dict(data, source=str(tmp_path / "recipe.json"))
    detector, classifier = Detector.open(str(model_paths[0])), Classifier.open(str(model_paths[1]))
    opened = []

    def build(serial: dict | None):
        cell = VirtualCell(speed_factor=200.0).start()
        reader = CodeReaderEmulator(lambda: cell.part, read_time_s=0.01).start()
        store = ResultStore(tmp_path / f"results-{len(opened)}.db")
        config = cell.station_config_dict()
        if serial is not None:
            config["serial"] = {k: (reader.port_path if v == "PORT" else v) for k, v in serial.items()}
        station = StationConfig.from_dict(config)
        devices = open_devices(station, virtual_cell=cell)
        cycle = InspectionCycle(station, devices, recipe, detector, classifier, store)
        opened.append((cycle, devices, store, reader, cell))
        cycle.home()
        return cell, cycle, store, reader

    yield build
    for cycle, devices, store, reader, cell in opened:
        cycle.close()
        devices.close()
        store.close()
        reader.stop()
        cell.stop()


def test_datamatrix_source_records_the_decoded_serial_and_flags_a_repeat(rig):
    cell, cycle, store, _ = rig({"source": "datamatrix", "view": "top"})
    cell.load_part(make_part(500_004, defect_probability=0.0))
    row, record = cycle.inspect("P-1", "SN-FROM-PLC")
    assert record.serial == "SIM-500004" and not record.reason.startswith("serial not read")
    assert record.extra["serial_given"] == "SN-FROM-PLC" and "serial_seen_before" not in record.extra
    again_row, again = cycle.inspect("P-2")  # the same part once more: flagged, not refused
    assert again.serial == "SIM-500004" and not again.reason.startswith("serial not read")
    assert again.extra["serial_seen_before"] == [row] and store.get(again_row).extra["serial_seen_before"] == [row]


def test_unreadable_mark_is_error_with_the_reason(rig):
    cell, cycle, _, _ = rig({"source": "datamatrix", "view": "top"})
    cell.load_part(make_part(500_005, marked=False))
    _, record = cycle.inspect("P-1", "SN-1")
    assert record.verdict == "ERROR"
    assert record.reason == "serial not read: no readable Data Matrix in the coarse image of view 'top'"


def test_barcode_source_reads_and_no_read_is_error(rig):
    cell, cycle, _, reader = rig({"source": "barcode", "url": "PORT", "timeout_s": 0.5})
    cell.load_part(make_part(500_006, defect_probability=0.0))
    _, record = cycle.inspect("P-1")
    assert record.serial == "SIM-500006" and not record.reason.startswith("serial not read")
    reader.force_no_read = True
    _, record = cycle.inspect("P-2")
    assert record.verdict == "ERROR" and record.reason.startswith("serial not read: code reader")
    assert "no code read" in record.reason


def test_plc_source_needs_a_serial(rig):
    cell, cycle, _, _ = rig({"source": "plc"})
    cell.load_part(make_part(500_007, defect_probability=0.0))
    _, record = cycle.inspect("P-1", "")
    assert record.verdict == "ERROR" and record.reason == "serial not read: the PLC gave none"
    assert record.serial == "P-1"  # the record is still findable by the part id
    _, record = cycle.inspect("P-2", "SN-7")
    assert record.serial == "SN-7" and not record.reason.startswith("serial not read")


def test_serial_view_must_be_a_recipe_view(rig):
    with pytest.raises(ConfigError, match="serial.view: .*got 'bottom'"):
        rig({"source": "datamatrix", "view": "bottom"})


def test_serial_section_is_checked():
    with VirtualCell() as cell:
        data = cell.station_config_dict()
        data["serial"] = {"source": "barcode"}
        with pytest.raises(ConfigError, match="serial.url: missing"):
            StationConfig.from_dict(data, source="station.toml")
        data["serial"] = {"source": "ocr"}
        with pytest.raises(ConfigError, match="serial.source"):
            StationConfig.from_dict(data, source="station.toml")
        data["serial"] = {"source": "datamatrix", "view": "top"}
        assert StationConfig.from_dict(StationConfig.from_dict(data).to_dict()).serial.view == "top"
