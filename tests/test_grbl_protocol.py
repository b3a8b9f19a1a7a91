"""grblHAL protocol tables: parsing of replies and formatting of commands, and the emulator's
answers byte for byte to what a sender writes."""
import os
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


# -- the emulator, table by table, against grblHAL's core sources ---------------------------------------
# Each table replays (bytes sent, lines expected back) against a fresh emulator; SOURCE names the
# grblHAL/core file and function the behaviour is taken from (read with the search tool's read_file).
# IDLE waits until the machine reports Idle (its reports are not part of the table).
IDLE = object()
HOMING_LOCK = "GrblHAL 1.1f ['$' or '$HELP' for help]"
BOOT = ["", HOMING_LOCK]

TABLES = {
    "boot, homing lock and unlock": dict(
        source="protocol.c protocol_main_loop (ALARM:11 + [MSG:Homing cycle required] at boot); "
               "machine_limits.c limits_homing_required; system.c disable_lock ($X -> error 46), go_home ([MSG:])",
        emulator={}, exchanges=[
            (b"\x18", [*BOOT, "[MSG:Homing cycle required]"]),  # ALARM:11 is already set: not printed again
            (b"G0X1\n", ["error:9"]),  # G-code is locked out in alarm
            (b"$X\n", ["error:46"]),  # the startup lock: only homing lifts it
            (b"\n", ["ok"]),  # an empty line, "for syncing purposes"
            (b"$H\n", ["[MSG:]", "ok"]),
            (b"$X\n", ["ok"]),  # not in alarm: no effect
        ]),
    "sticky errors": dict(
        source="protocol.c protocol_main_loop: gc_state.last_error with COMPATIBILITY_LEVEL 0 (config.h); "
               "cleared by an empty line or a `$` command",
        emulator={"homing_required": False}, exchanges=[
            (b"G0X1P2\n", ["error:36"]),  # unused value word P
            (b"G0X1\n", ["error:36"]),  # not executed: the same error again
            (b"\n", ["ok"]),
            (b"G53G0X-90\n", ["ok"]),
            (b"G4P-1\n", ["error:4"]),
            (b"G0X1\n", ["error:4"]),
            (b"$G\n", ["[GC:G0 G54 G17 G21 G90 G94 G49 G98 G50 M5 M9 T0 F0 S0.]", "ok"]),  # a `$` command clears
            (b"G4P0\n", ["ok"]),
        ]),
    "error codes of a block": dict(
        source="gcode.c gc_execute_block (errors.h status_code_t); system.c system_execute_line",
        emulator={"homing_required": False}, exchanges=[
            (b"G0X\n", ["error:2"]), (b"\n", ["ok"]),
            (b"G1X1\n", ["error:22"]), (b"\n", ["ok"]),  # no feed rate yet
            (b"G0X1X2\n", ["error:25"]), (b"\n", ["ok"]),
            (b"G0G1X1\n", ["error:21"]), (b"\n", ["ok"]),
            (b"G10L2P10X1\n", ["error:29"]), (b"\n", ["ok"]),
            (b"G10L2X1\n", ["error:28"]), (b"\n", ["ok"]),
            (b"G4\n", ["error:28"]), (b"\n", ["ok"]),
            (b"G4P1L2\n", ["error:36"]), (b"\n", ["ok"]),
            (b"M7\n", ["error:20"]), (b"\n", ["ok"]),  # no mist coolant on this build
            (b"G38.2Z-1F10\n", ["error:20"]), (b"\n", ["ok"]),  # no probe
            (b"G10L2P1X5G0\n", ["error:24"]), (b"\n", ["ok"]),
            (b"$99\n", ["error:3"]), (b"$J=G91X1\n", ["error:16"]), (b"$J=G91X1Q1F100\n", ["error:16"]),
            (b"G17G21G90G94M3S1000M8\n", ["error:16"]),  # a failed `$` command is sticky too
            (b"\n", ["ok"]), (b"G17G21G90G94M3S1000M8\n", ["ok"]), (b"M5M9\n", ["ok"]), (b"M2\n", ["[MSG:Pgm End]", "ok"]),
        ]),
    "work offsets, WCO and report modes": dict(
        source="gcode.c gc_execute_block (G10 L2/L20, G53, G54-G59.3); report.c report_ngc_parameters, "
               "report_realtime_status ($10 bit 0 MPos/WPos; WCO after a change and every 10 reports idle)",
        emulator={"homing_required": False}, exchanges=[
            (b"G10L2P1X5Y-3\n", ["ok"]),
            (b"$#\n", ["[G54:5.000,-3.000,0.000,0.000,0.000]", "[G55:0.000,0.000,0.000,0.000,0.000]",
                       "[G56:0.000,0.000,0.000,0.000,0.000]", "[G57:0.000,0.000,0.000,0.000,0.000]",
                       "[G58:0.000,0.000,0.000,0.000,0.000]", "[G59:0.000,0.000,0.000,0.000,0.000]",
                       "[G59.1:0.000,0.000,0.000,0.000,0.000]", "[G59.2:0.000,0.000,0.000,0.000,0.000]",
                       "[G59.3:0.000,0.000,0.000,0.000,0.000]", "[G28:0.000,0.000,0.000,0.000,0.000]",
                       "[G30:0.000,0.000,0.000,0.000,0.000]", "[G92:0.000,0.000,0.000,0.000,0.000]",
                       "[TLO:0.000,0.000,0.000,0.000,0.000]", "[PRB:0.000,0.000,0.000,0.000,0.000:0]", "ok"]),
            (b"?", ["<Idle|MPos:-100.000,-60.000,-40.000,-360.000,-90.000|Bf:35,1023|FS:0,0"
                    "|WCO:5.000,-3.000,0.000,0.000,0.000>"]),  # the offset changed: WCO in the next report
            (b"?", ["<Idle|MPos:-100.000,-60.000,-40.000,-360.000,-90.000|Bf:35,1023|FS:0,0|Ov:100,100,100>"]),
            (b"G0X10Y0\n", ["ok"]), (IDLE, []),  # G54 X10 Y0 = MPos X15 Y-3
            (b"$10=0\n", ["ok"]),
            (b"?", ["<Idle|WPos:10.000,0.000,-40.000,-360.000,-90.000|FS:0,0>"]),
            (b"G10L20P1X0\n", ["ok"]),  # the current position becomes G54 X0
            (b"$10=511\n", ["ok"]),
            (b"?", ["<Idle|MPos:15.000,-3.000,-40.000,-360.000,-90.000|Bf:35,1023|FS:0,0"
                    "|WCO:15.000,-3.000,0.000,0.000,0.000>"]),
            (b"G91G53G0X0\n", ["ok"]), (IDLE, []),  # G53: machine coordinates, G91 and offsets ignored
            (b"?", ["<Idle|MPos:0.000,-3.000,-40.000,-360.000,-90.000|Bf:35,1023|FS:0,0>"]),
        ]),
    "positions are whole steps": dict(
        source="planner.c plan_buffer_line (target_steps = lroundf(target * steps_per_mm)); system.c "
               "system_convert_array_steps_to_mpos; report.c (3 decimals)",
        emulator={"homing_required": False}, exchanges=[
            (b"G53G0X1.0011Y1.003Z-0.0019\n", ["ok"]), (IDLE, []),  # 250 steps/mm: 0.004 mm a step
            (b"?", ["<Idle|MPos:1.000,1.004,0.000,-360.000,-90.000|Bf:35,1023|FS:0,0>"]),
            (b"$101=80\n", ["ok"]),
            (b"G53G0Y1.003\n", ["ok"]), (IDLE, []),  # 80 steps/mm: 0.0125 mm a step
            (b"?", ["<Idle|MPos:1.000,1.000,0.000,-360.000,-90.000|Bf:35,1023|FS:0,0>"]),
        ]),
    "soft limits": dict(
        source="machine_limits.c limits_set_work_envelope, check_travel_limits, limits_soft_check (ALARM:2, "
               "[MSG:Reset to continue], blocks until reset); motion_control.c mc_jog_execute (error 15); "
               "protocol.c protocol_exec_rt_system (G-code error:9 while blocked)",
        emulator={}, exchanges=[
            (b"$H\n", ["[MSG:]", "ok"]),  # MPos -1 (pull-off); envelope [-travel, 0] on homed axes
            (b"$J=G53X5F1000\n", ["error:15"]),  # a jog beyond travel is refused, no alarm
            (b"\n", ["ok"]),  # (a failed `$` command is sticky too)
            (b"G53G0X1\n", ["ALARM:2", "[MSG:Reset to continue]"]),  # the line gets no reply
            (b"G0X-5\n", ["error:9"]),
            (b"$X\n", ["error:79"]),  # not while the critical event lasts
            (b"\n", ["ok"]),
            (b"\x18", [*BOOT, "[MSG:'$H'|'$X' to unlock]"]),
            (b"$X\n", ["[MSG:Caution: Unlocked]", "ok"]),  # homed state kept: no homing needed
            (b"G53G0X-199.5\n", ["ok"]),
        ]),
    "soft limits only on homed axes": dict(
        source="machine_limits.c check_travel_limits (sys.homed.mask); settings.c set_soft_limits_enable",
        emulator={"homing_required": False}, exchanges=[
            (b"$20=1\n", ["error:10"]),  # soft limits need homing enabled
            (b"$22=1\n", ["ok"]), (b"$20=1\n", ["ok"]),
            (b"G53G0X50\n", ["ok"]),  # nothing homed: nothing checked
        ]),
    "reset while moving": dict(
        source="motion_control.c mc_reset (ALARM:3, position lost, homed cleared); grbllib.c grbl_enter",
        emulator={"homing_required": False}, exchanges=[
            (b"G53G1X-50F60\n", ["ok"]),
            (b"\x18", ["ALARM:3", *BOOT, "[MSG:'$H'|'$X' to unlock]"]),
            (b"G0X1\n", ["error:9"]),
            (b"$X\n", ["[MSG:Caution: Unlocked]", "ok"]),
        ]),
}


def replay(emulator: GrblEmulator, exchanges) -> None:
    with serial.Serial(emulator.port_path, 115200, timeout=0.05) as port:
        time.sleep(0.05)
        port.read(4096)  # the power-on output
        for sent, expected in exchanges:
            if sent is IDLE:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not port.read(4096).startswith(b"<Idle"):
                    port.write(b"?")
                    time.sleep(0.02)
                port.read(4096)
                continue
            port.write(sent)
            got, deadline = b"", time.monotonic() + 1.0
            while time.monotonic() < deadline and got.count(b"\n") < len(expected):
                got += port.read(4096)
            time.sleep(0.05)
            got += port.read(4096)
            assert got.decode().splitlines() == expected, sent


@pytest.mark.parametrize("name", list(TABLES))
def test_emulator_protocol_table(name):
    table = TABLES[name]
    assert table["source"]
    with GrblEmulator(speed_factor=20.0, **table["emulator"]) as emulator:
        replay(emulator, table["exchanges"])


def test_power_on_and_build_info():
    """report.c report_init_message, report_build_info; settings.c report_setting."""
    emulator = GrblEmulator()
    time.sleep(0.05)  # read straight off the pty: pyserial's open() discards what is waiting
    assert os.read(emulator._slave, 4096).decode().splitlines() == ["", HOMING_LOCK, "ALARM:11", "[MSG:Homing cycle required]"]
    with emulator, serial.Serial(emulator.port_path, 115200, timeout=0.3) as port:
        port.write(b"$I\n")
        assert port.read(4096).decode().splitlines() == [
            "[VER:1.1f.20250731:]", "[OPT:VNMS,35,1023,5,0]", "[AXS:5:XYZAB]", "[NEWOPT:ENUMS,RT+,HOME,SED]",
            "[FIRMWARE:grblHAL]", "ok"]
        port.write(b"$$\n")
        settings = port.read(8192).decode().splitlines()
        assert {"$10=511", "$22=5", "$100=250.000", "$130=200.000", "$27=1.000"} <= set(settings)
        assert settings[-1] == "ok"


def test_replies_come_late_and_in_order():
    with GrblEmulator(homing_required=False, reply_latency_s=(0.03, 0.2), seed=3) as emulator, \
            serial.Serial(emulator.port_path, 115200, timeout=0.01) as port:
        time.sleep(0.3)
        port.read(4096)
        sent = time.monotonic()
        port.write(b"G0X1P2\n\n$G\n")
        got = b""
        while got.count(b"\n") < 4 and time.monotonic() - sent < 2:
            got += port.read(4096)
        assert time.monotonic() - sent >= 0.03
        assert got.decode().splitlines() == ["error:36", "ok", "[GC:G0 G54 G17 G21 G90 G94 G49 G98 G50 M5 M9 T0 F0 S0.]", "ok"]


def test_a_dwell_is_answered_once_the_planner_is_empty():
    """motion_control.c `mc_dwell` calls protocol.c `protocol_buffer_synchronize` (it returns when no
    block is left and the state is no longer cycle) before the dwell, and protocol.c answers the line
    only when it has been executed: `G4 P0`'s `ok` says the move before it has ended. The driver uses it
    to know when a move ends (grblhal.py, "Knowing when a move ends")."""
    with GrblEmulator(speed_factor=1.0, homing_required=False) as emulator, \
            serial.Serial(emulator.port_path, 115200, timeout=0.01) as port:
        time.sleep(0.1)
        port.read(4096)

        def lines_until(count: int, limit_s: float = 2.0) -> list[str]:
            got, deadline = b"", time.monotonic() + limit_s
            while got.count(b"\n") < count and time.monotonic() < deadline:
                got += port.read(4096)
            return got.decode().splitlines()

        port.write(b"G53G0X-50\nG4P0\n")
        sent = time.monotonic()
        assert lines_until(1) == ["ok"]  # the move is planned: its line is answered at once
        port.write(b"?")
        assert lines_until(1)[0].startswith("<Run|MPos:")  # still moving; the dwell's `ok` has not come
        assert lines_until(1) == ["ok"]  # the dwell: the planner is empty
        assert time.monotonic() - sent >= 0.15  # 50 mm at 400 mm/s and 3000 mm/s² take 0.158 s, then the settle
        port.write(b"?")
        assert lines_until(1)[0].startswith("<Idle|MPos:-50.000,")
