"""Light drivers against the emulators over real pseudo-terminals."""
import time

import pytest

from hardware.errors import ControllerError, PortClosed, ProtocolError, ReadTimeout
from hardware.lights.base import LightProgram
from hardware.lights.gardasoft import GardasoftController
from hardware.lights.template import TemplateLightController, TemplateProtocolSpec
from hardware.sim.light_emulators import GardasoftEmulator, TemplateEmulator
from hardware.transport import LineTransport

WIRING = {"coaxial": 1, "ring": 2, "low_angle": 3, "backlight": 4, "seg_n": 5, "seg_e": 6, "seg_s": 7, "seg_w": 8}
SPEC = TemplateProtocolSpec.from_dict({"set_level": "L{channel},{value:03d}", "save": "SAVE", "reply": "^ACK$",
                                       "error": "^NAK(?P<code>\\d*)$", "value_max": 100, "line_end": "\n"})


@pytest.fixture
def gardasoft():
    with GardasoftEmulator() as unit:
        driver = GardasoftController(LineTransport(unit.port_path, name="lights", read_timeout_s=0.5), WIRING)
        driver.connect()
        yield unit, driver
        driver.disconnect()


def test_levels_strobe_save_and_all_off(gardasoft):
    unit, driver = gardasoft
    assert driver.version == "RT860-EMU (HW01) V001"
    driver.set_level("coaxial", 62.5)
    driver.set_strobe("low_angle", pulse_us=400, delay_us=50, percent=90)
    state = unit.channel_state()
    assert state[1].mode == "continuous" and state[1].percent == 62.5
    assert (state[3].mode, state[3].pulse_us, state[3].delay_us, state[3].percent) == ("strobe", 400, 50, 90)
    driver.save()
    assert unit.saved[3].mode == "strobe"
    # the camera integrates a strobe only while it fires inside the exposure
    assert unit.effective_levels(WIRING, 2000)["low_angle"] == pytest.approx(90 * 400 / 2000)
    driver.all_off()
    assert all(c.mode == "off" for c in unit.channel_state().values())
    assert driver.levels()["coaxial"].percent == 0


def test_segmented_program_steps(gardasoft):
    unit, driver = gardasoft
    program = LightProgram.from_dict("ps4", {"steps": [{"levels": {role: 70}} for role in ("seg_n", "seg_e", "seg_s", "seg_w")]})
    seen = []
    for step in program.steps:
        driver.apply(step)
        seen.append([role for role, ch in WIRING.items() if unit.channel_state()[ch].percent > 0])
    assert seen == [["seg_n"], ["seg_e"], ["seg_s"], ["seg_w"]]


def test_out_of_range_is_refused_before_sending(gardasoft):
    unit, driver = gardasoft
    sent_before = len(unit.received)
    with pytest.raises(ValueError, match="light 'ring': level 120 is out of range, expected 0–100 %"):
        driver.set_level("ring", 120)
    with pytest.raises(ValueError, match="unknown light role 'uv'"):
        driver.set_level("uv", 10)
    assert len(unit.received) == sent_before


def test_unit_error_names_the_command(gardasoft):
    _, driver = gardasoft
    with pytest.raises(ControllerError) as info:
        driver.command("RS12,10")  # the unit has 8 outputs
    assert info.value.code == 1 and info.value.command == "RS12,10" and "parameter value is invalid" in str(info.value)
    with pytest.raises(ControllerError, match="error 4 for 'RS1': wrong number of parameters"):
        driver.command("RS1")
    assert driver.clear_errors() == ["Evt0,4"]  # GR reports and clears the last error
    driver.set_level("ring", 10)  # the link is still in step after an error


def test_adjusted_timing_is_a_warning_not_an_error(gardasoft):
    unit, driver = gardasoft
    driver.set_strobe("low_angle", pulse_us=400, delay_us=0, percent=90)  # Err 5: delay raised to the minimum
    assert driver.warnings == [("RT3,400us,0us,90", 5)]
    assert unit.channel_state()[3].delay_us == unit.MIN_DELAY_US


def test_failed_save_is_an_error(gardasoft):
    unit, driver = gardasoft
    unit.save_fails = True
    with pytest.raises(ControllerError, match="error 9 for 'AW'"):
        driver.save()


def test_silence_times_out(gardasoft):
    unit, driver = gardasoft
    unit.mute = True
    started = time.monotonic()
    with pytest.raises(ReadTimeout, match="lights: no reply within 0.5 s"):
        driver.set_level("ring", 10)
    assert time.monotonic() - started < 3


def test_port_vanishing(gardasoft):
    unit, driver = gardasoft
    unit.vanish()
    with pytest.raises(PortClosed):
        driver.set_level("ring", 10)


def test_wrong_echo_is_a_protocol_error(gardasoft):
    unit, driver = gardasoft
    unit.on_bytes = lambda data: unit.send(b"garbage\n\r>")
    with pytest.raises(ProtocolError, match="echoed 'garbage'"):
        driver.set_level("ring", 10)


def test_template_protocol_with_custom_spec():
    with TemplateEmulator(SPEC, [1, 2, 3], error_reply="NAK7") as unit:
        driver = TemplateLightController(LineTransport(unit.port_path, name="acme", read_timeout_s=0.5), SPEC,
                                         {"coaxial": 1, "backlight": 3})
        driver.connect()
        driver.set_level("backlight", 45)
        driver.save()
        assert unit.channel_state()[3].percent == 45 and unit.saved[3].percent == 45
        with pytest.raises(ValueError, match="acme: this template controller has no strobe command"):
            driver.set_strobe("coaxial", 100, 0, 50)
        driver.disconnect()
        miswired = TemplateLightController(LineTransport(unit.port_path, name="acme", read_timeout_s=0.5), SPEC,
                                           {"ring": 9})  # an output the unit does not have
        miswired.connect()
        with pytest.raises(ControllerError, match="acme: error 7 for 'L9,050'"):
            miswired.set_level("ring", 50)
        miswired.disconnect()


def test_unwired_role_is_named():
    with TemplateEmulator(SPEC, [1]) as unit:
        driver = TemplateLightController(LineTransport(unit.port_path, name="acme"), SPEC, {"coaxial": 1})
        driver.connect()
        with pytest.raises(ValueError, match="no channel wired for light role 'ring'"):
            driver.set_level("ring", 10)
        driver.disconnect()
