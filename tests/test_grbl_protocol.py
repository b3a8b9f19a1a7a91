"""grblHAL protocol tables: parsing of replies and formatting of commands, and the emulator's
answers byte for byte to what a sender writes."""
import time

import pytest
import serial

from hardware.motion import grbl_protocol as proto
from hardware.motion.base import Pose
from hardware.sim.grbl_emulator import GrblEmulator


@pytest.mark.parametrize("line,state,sub,mpos,extra", [
    ("<Idle|MPos:0.000,0.000,0.000,0.000,0.000|FS:0,0>", "Idle", None, (0, 0, 0, 0, 0), {}),
    ("<Run|MPos:10.500,-2.000,40.000,90.000,-45.000|Bf:34,1023|FS:24000,0|WCO:0.000,0.000,0.000,0.000,0.000>",
     "Run", None, (10.5, -2, 40, 90, -45), {}),
    ("<Hold:0|MPos:1.000,2.000,3.000,4.000,5.000|FS:0,0|Ov:100,100,100>", "Hold", 0, (1, 2, 3, 4, 5), {}),
    ("<Door:1|MPos:1.000,2.000,3.000|F:500>", "Door", 1, (1, 2, 3), {}),
    ("<Alarm|MPos:0.000,0.000,0.000,0.000,0.000|Pn:XZ|FS:0,0|A:S>", "Alarm", None, (0, 0, 0, 0, 0), {"A": "S"}),
])
def test_parse_status(line, state, sub, mpos, extra):
    parsed = proto.parse_status(line)
    assert (parsed.state, parsed.substate, parsed.machine_pos, parsed.extra) == (state, sub, mpos, extra)


def test_parse_status_wpos_uses_last_wco():
    parsed = proto.parse_status("<Idle|WPos:1.000,1.000,1.000,0.000,0.000|FS:0,0>", (10, 20, 30, 0, 0))
    assert parsed.machine_pos == (11, 21, 31, 0, 0) and parsed.work_pos == (1, 1, 1, 0, 0)


@pytest.mark.parametrize("line", ["<Flying|MPos:0,0,0>", "<Idle|FS:0,0>", "<Idle|MPos>", "Idle|MPos:0,0,0"])
def test_parse_status_rejects_garbage(line):
    with pytest.raises(ValueError):
        proto.parse_status(line)


def test_status_round_trip():
    text = proto.format_status("Hold", (1.0, -2.5, 3.0, 90.0, 0.0), substate=1, buffer=(30, 1000), feed=1200,
                               work_offset=(0,) * 5, overrides=(100, 100, 100))
    assert text == ("<Hold:1|MPos:1.000,-2.500,3.000,90.000,0.000|Bf:30,1000|FS:1200,0"
                    "|WCO:0.000,0.000,0.000,0.000,0.000|Ov:100,100,100>")
    assert proto.parse_status(text).machine_pos == (1.0, -2.5, 3.0, 90.0, 0.0)


def test_axes_settings_and_codes():
    assert proto.parse_axes(["[VER:1.1f.20240101:]", "[AXS:5:XYZAB]"]) == "XYZAB"
    assert proto.parse_axes(["[VER:1.1h.20190830:]"]) == "XYZ"
    settings = proto.parse_settings(["$100=800.000", "$110=24000.000 (x max rate)", "$22=1", "[MSG:x]"])
    assert settings == {100: "800.000", 110: "24000.000", 22: "1"}
    with pytest.raises(KeyError, match=r"\$120 \(X axis\)"):
        proto.axis_settings(settings, "X")
    assert "Jog target exceeds machine travel" in proto.error_meaning(15)
    assert "exceeds machine travel" in proto.alarm_meaning(2) and proto.alarm_meaning(11).startswith("Homing required")
    assert proto.error_meaning(999) == "unknown error code"


@pytest.mark.parametrize("call,expected", [
    (lambda: proto.format_move(Pose(1, 2, 3, 90, -45)), "G90 G0 X1.000 Y2.000 Z3.000 A90.000 B-45.000"),
    (lambda: proto.format_move(Pose(1, 2, 3), "XYZ", 600), "G90 G1 X1.000 Y2.000 Z3.000 F600.0"),
    (lambda: proto.format_jog("b", -1.5, 1800), "$J=G91 B-1.500 F1800.0"),
])
def test_formatting(call, expected):
    assert call() == expected


def test_formatting_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown axis 'q'"):
        proto.format_jog("q", 1, 100)
    with pytest.raises(ValueError, match="feed"):
        proto.format_move(Pose(), feed_per_min=0)


# (bytes sent, lines expected back) — the emulator answers as grblHAL does.
EXCHANGES = [
    (b"\x18", ["GrblHAL 1.1f ['$' or '$HELP' for help]", "[MSG:'$H'|'$X' to unlock]"]),
    (b"G0 X1\n", ["error:9"]),  # locked until homed or unlocked
    (b"$X\n", ["[MSG:Caution: Unlocked]", "ok"]),
    (b"$I\n", ["[VER:1.1f.20240101:]", "[OPT:VNMSL,35,1023,5,0]", "[AXS:5:XYZAB]", "[NEWOPT:ENUMS,RT+,HOME,SED]",
               "[FIRMWARE:grblHAL]", "ok"]),
    (b"G4 P1\n", ["error:20"]),
    (b"G1 X1\n", ["error:22"]),  # no feed rate yet
    (b"G0 X\n", ["error:2"]),
    (b"G0 X1 X2\n", ["error:25"]),
    (b"$J=G91 X1\n", ["error:16"]),
    (b"$J=G91 X-500 F1000\n", ["error:15"]),
    (b"$99\n", ["error:3"]),
    (b"?", ["<Idle|MPos:0.000,0.000,40.000,0.000,0.000|Bf:35,1023|FS:0,0|WCO:0.000,0.000,0.000,0.000,0.000|Ov:100,100,100>"]),
    (b"G0 X500\n", ["ALARM:2", "[MSG:Reset to continue]"]),
    (b"$X\n", []),  # a critical alarm ignores lines until reset
]


def test_emulator_exchanges_table():
    with GrblEmulator() as emulator, serial.Serial(emulator.port_path, 115200, timeout=0.05) as port:
        time.sleep(0.05)
        port.read(4096)  # the power-on banner
        for sent, expected in EXCHANGES:
            port.write(sent)
            got, deadline = b"", time.monotonic() + 1.0
            while time.monotonic() < deadline and got.count(b"\n") < len(expected):
                got += port.read(4096)
            time.sleep(0.05)
            got += port.read(4096)
            assert got.decode().splitlines() == expected, sent
