"""Light protocols as tables: (command the driver writes, bytes the unit answers), and the
validation of light programs and template specs."""
import time

import pytest
import serial

from hardware.lights.base import LightProgram
from hardware.lights.template import TemplateProtocolSpec
from hardware.sim.light_emulators import GardasoftEmulator, TemplateEmulator, template_regex

# What the RT-series manuals document: the unit echoes the line, separates reply lines with LF CR
# and ends every reply with a bare `>` prompt; times are ms unless they carry a unit.
GARDASOFT = [
    (b"VR\r", b"VR\n\rRT860-EMU (HW01) V001\n\r>"),
    (b"RS1,50\r", b"RS1,50\n\r>"),
    (b"RT2,500us,100us,80\r", b"RT2,500us,100us,80\n\r>"),
    (b"RT3,0.5,0.1,80\r", b"RT3,0.5,0.1,80\n\r>"),  # 0.5 ms pulse, 0.1 ms delay
    (b"RT4,500us,0us,80\r", b"RT4,500us,0us,80\n\rErr 5\n\r>"),  # delay raised to the minimum: a warning
    (b"RS1,50;RS5,20\r", b"RS1,50;RS5,20\n\r>"),  # several commands on a line
    (b"AW\r", b"AW\n\r>"),
    (b"GR\r", b"GR\n\rEvt4,5\n\r>"),  # the last event, then cleared
    (b"GR\r", b"GR\n\r>"),
    (b"RS1,150\r", b"RS1,150\n\rErr 1\n\r>"),
    (b"RS9,10\r", b"RS9,10\n\rErr 1\n\r>"),
    (b"XY\r", b"XY\n\rErr 2\n\r>"),
    (b"RS1,x\r", b"RS1,x\n\rErr 3\n\r>"),
    (b"RS1\r", b"RS1\n\rErr 4\n\r>"),
]

SPEC = TemplateProtocolSpec.from_dict({"set_level": "S{channel}{value:04d}#", "save": "W#",
                                       "set_strobe": "T{channel}{pulse_us:05d}{delay_us:05d}{value:04d}#",
                                       "reply": "^OK$", "error": "^NG(?P<code>\\d*)$", "value_max": 255})
TEMPLATE = [
    (b"SA0128#\r", [b"OK"]),
    (b"TB00300000000255#\r", [b"OK"]),
    (b"W#\r", [b"OK"]),
    (b"SZ0010#\r", [b"NG1"]),  # no channel Z
    (b"SA0999#\r", [b"NG1"]),  # beyond value_max
    (b"HELLO\r", [b"NG1"]),
]


def exchange(device, table):
    with serial.Serial(device.port_path, 115200, timeout=0.05) as port:
        for sent, expected in table:
            port.write(sent)
            got, deadline = b"", time.monotonic() + 1.0
            while time.monotonic() < deadline and got.count(b"\n") < len(expected):
                got += port.read(256)
            assert got.split(b"\r\n")[:-1] == expected, sent


def test_gardasoft_table():
    with GardasoftEmulator() as unit, serial.Serial(unit.port_path, 115200, timeout=0.05) as port:
        for sent, expected in GARDASOFT:
            port.write(sent)
            got, deadline = b"", time.monotonic() + 1.0
            while time.monotonic() < deadline and not got.endswith(b">"):
                got += port.read(256)
            assert got == expected, sent
        assert unit.channels[2].mode == "strobe" and unit.saved[1].percent == 50
        assert (unit.channels[3].pulse_us, unit.channels[3].delay_us) == (500, 100)
        assert unit.channels[4].delay_us == unit.MIN_DELAY_US and unit.channels[5].percent == 20


def test_template_table():
    with TemplateEmulator(SPEC, "ABCD") as unit:
        exchange(unit, TEMPLATE)
        assert unit.channels["A"].percent == pytest.approx(128 / 255 * 100)
        assert unit.channels["B"].mode == "strobe" and unit.saved["B"].pulse_us == 300


def test_template_regex_matches_what_format_writes():
    pattern = template_regex("T{channel}{pulse_us:05d}{delay_us:05d}{value:04d}#")
    match = pattern.fullmatch("T3" + "00500" + "00010" + "0200" + "#")
    assert match.groupdict() == {"channel": "3", "pulse_us": "00500", "delay_us": "00010", "value": "0200"}


@pytest.mark.parametrize("data,message", [
    ({}, "lights.template.set_level: missing"),
    ({"set_level": "S{chan}{value}"}, "unknown placeholder {chan}"),
    ({"set_level": "S{channel}{value}", "save": "W{value}"}, "lights.template.save: unknown placeholder {value}"),
    ({"set_level": "S{channel!r}{value}"}, "conversions"),
    ({"set_level": "S{channel}{value:q}"}, "does not format"),
    ({"set_level": "S{channel}{value}", "reply": "(OK"}, "lights.template.reply: not a valid regular expression"),
    ({"set_level": "S{channel}{value}", "value_max": 0}, "value_max: expected an integer ≥ 1"),
    ({"set_level": "S{channel}{value}", "baud": 9600}, "lights.template.baud: unknown field"),
])
def test_template_spec_errors_name_the_field(data, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        TemplateProtocolSpec.from_dict(data)


def test_light_program_round_trip_and_errors():
    data = {"steps": [{"levels": {"seg_n": 60}}, {"levels": {"seg_e": 60}}, {"levels": {"seg_s": 60}},
                      {"levels": {"ring": 40, "coaxial": 80}, "mode": "strobe", "pulse_us": 800, "delay_us": 20}]}
    program = LightProgram.from_dict("ps4", data)
    assert len(program.steps) == 4 and program.steps[3].pulse_us == 800
    assert LightProgram.from_dict("ps4", program.to_dict()) == program
    for bad, message in [
        ({"steps": [{"levels": {"seg_x": 50}}]}, "program 'ps4' step 1: level for 'seg_x' — unknown role"),
        ({"steps": [{"levels": {"ring": 120}}]}, "step 1: level for 'ring' — 120 is out of range, expected 0–100 %"),
        ({"steps": [{"levels": {"ring": 10}, "mode": "flash"}]}, "step 1: mode 'flash'"),
        ({"steps": [{"levels": {"ring": 10}, "mode": "strobe"}]}, "strobe needs pulse_us > 0"),
        ({"steps": []}, "non-empty list 'steps'"),
        ({"steps": [{"levels": {"ring": 10}, "colour": 1}]}, "unknown field 'colour'"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            LightProgram.from_dict("ps4", bad)
