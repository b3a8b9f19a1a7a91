"""A PLC drives `inspector serve --sim --modbus` over Modbus TCP (a real pymodbus client): the
handshake for three parts, commands out of turn (ignored, counted, state unchanged), a machine
fault and its reset, and the records in the SQLite store carry the serials the PLC wrote."""
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

pytest.importorskip("pymodbus")

from pymodbus.client import ModbusTcpClient  # noqa: E402

from inspector.plc.modbus_server import (CMD_ACK, CMD_INSPECT, CMD_RESET, REG_COMMAND, REG_RECIPE,  # noqa: E402
                                         REG_SERIAL, ModbusPlcServer, decode_serial, encode_serial)
from inspector.station import StationController, StationState  # noqa: E402

HEARTBEAT, STATE, COMMAND, RECIPE, RESULT, DEFECTS, CYCLE_MS, FAULT = range(8)
OFFLINE, READY, BUSY, DONE, FAULTED = range(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Plc:
    def __init__(self, port: int, timeout_s: float = 60.0):
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
        deadline = time.monotonic() + timeout_s
        while not self.client.connect():
            assert time.monotonic() < deadline, "the Modbus server did not come up"
            time.sleep(0.2)

    def regs(self) -> list[int]:
        reply = self.client.read_holding_registers(0, count=30, device_id=1)
        assert not reply.isError(), reply
        return reply.registers

    def write(self, address: int, values) -> None:
        values = values if isinstance(values, list) else [values]
        reply = self.client.write_registers(address, values, device_id=1)
        assert not reply.isError(), reply

    def wait_state(self, *states: int, timeout_s: float = 90.0) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while True:
            regs = self.regs()
            if regs[STATE] in states:
                return regs
            assert time.monotonic() < deadline, f"state {regs[STATE]}, expected {states}: {regs[:8]}"
            time.sleep(0.02)

    def inspect(self, serial: str, recipe_no: int = 1) -> list[int]:
        self.write(REG_SERIAL, encode_serial(serial))
        self.write(REG_RECIPE, recipe_no)
        self.write(REG_COMMAND, CMD_INSPECT)
        return self.wait_state(DONE, FAULTED)

    def acknowledge(self) -> list[int]:
        self.write(REG_COMMAND, CMD_ACK)
        return self.wait_state(READY, timeout_s=10)


def test_serial_registers_round_trip():
    regs = encode_serial("SN-0001")
    assert len(regs) == 20 and regs[0] == (ord("S") << 8) | ord("N") and regs[-1] == 0
    assert decode_serial(regs) == "SN-0001"
    assert decode_serial(encode_serial("A" * 45)) == "A" * 40


def test_plc_drives_inspector_serve_over_modbus(tmp_path):
    port = free_port()
    db = tmp_path / "line.db"
    proc = subprocess.Popen([sys.executable, "-m", "inspector.cli", "serve", "--sim", "--modbus", f"127.0.0.1:{port}",
                             "--db", str(db), "--speed-factor", "200"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        plc = Plc(port)
        regs = plc.wait_state(READY)
        beat = regs[HEARTBEAT]
        serials = ["SN-A001", "SN-A002", "SN-A003"]
        for serial in serials:
            done = plc.inspect(serial)
            assert done[STATE] == DONE, done[:8]
            assert done[RESULT] in (1, 2, 3) and done[COMMAND] == 0 and done[FAULT] == 0
            assert 0 < done[CYCLE_MS] <= 65535
            assert plc.regs()[STATE] == DONE  # not acknowledged: the result stays
            ready = plc.acknowledge()
            assert ready[RESULT] == 0 and ready[DEFECTS] == 0 and ready[CYCLE_MS] == 0
        assert plc.regs()[HEARTBEAT] != beat

        plc.write(REG_COMMAND, CMD_ACK)  # out of turn: acknowledge while ready
        time.sleep(0.3)
        regs = plc.regs()
        assert regs[STATE] == READY and regs[COMMAND] == 0
        reply = plc.client.write_register(STATE, DONE, device_id=1)  # a station register: refused
        assert reply.isError() and plc.regs()[STATE] == READY
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopping" in out and all(f"part '{s}'" in out for s in serials), out
    with sqlite3.connect(db) as con:
        stored = [row[0] for row in con.execute("SELECT serial FROM parts ORDER BY id")]
    assert stored == serials


@pytest.fixture
def line(tmp_path, recipe):
    controller = StationController(db=str(tmp_path / "r.db"), sim=True, speed_factor=200, recipes={1: recipe})
    controller.start()
    assert controller.state == StationState.READY, controller.fault_reason
    server = ModbusPlcServer(controller, f"127.0.0.1:{free_port()}").start()
    plc = Plc(server.port)
    yield controller, server, plc
    plc.client.close()
    server.stop()
    controller.close()


def test_out_of_turn_commands_fault_and_reset(line):
    controller, server, plc = line
    plc.write(REG_COMMAND, CMD_ACK)  # ready: nothing to acknowledge
    plc.write(REG_SERIAL, encode_serial("SN-B001"))
    plc.write(REG_RECIPE, 1)
    plc.write(REG_COMMAND, CMD_INSPECT)
    plc.wait_state(BUSY, DONE, timeout_s=10)
    plc.write(REG_COMMAND, CMD_INSPECT)  # busy: ignored
    plc.write(REG_COMMAND, CMD_RESET)  # busy: ignored
    done = plc.wait_state(DONE, FAULTED)
    assert done[STATE] == DONE
    time.sleep(0.1)
    assert controller.commands_refused >= 2  # the two while busy (the first ack may have raced the part)
    refused = controller.commands_refused
    plc.write(REG_COMMAND, CMD_INSPECT)  # done, not acknowledged: a second part must not start
    time.sleep(0.3)
    assert plc.regs()[STATE] == DONE and controller.commands_refused == refused + 1
    plc.acknowledge()
    with controller.store.reading() as execute:
        assert [r[0] for r in execute("SELECT serial FROM parts")] == ["SN-B001"]

    controller.cell.motion.inject_alarm(1)  # a limit switch: the station faults by itself
    regs = plc.wait_state(FAULTED, timeout_s=10)
    assert regs[FAULT] == 2
    plc.write(REG_COMMAND, CMD_ACK)  # fault: ack does nothing
    time.sleep(0.3)
    assert plc.regs()[STATE] == FAULTED
    plc.write(REG_COMMAND, CMD_RESET)
    regs = plc.wait_state(READY, timeout_s=60)
    assert regs[FAULT] == 0

    controller.cell.inject_fault("camera-timeout")  # hardware fault during a part: ERROR and fault 3
    regs = plc.inspect("SN-B002")
    assert regs[STATE] == FAULTED and regs[RESULT] == 3 and regs[FAULT] == 3, regs[:8]
    controller.cell.clear_faults()
    plc.write(REG_COMMAND, CMD_RESET)
    plc.wait_state(READY, timeout_s=60)
    plc.write(REG_COMMAND, 9)  # unknown command: ignored, counted
    time.sleep(0.3)
    assert server.unknown_commands == 1 and plc.regs()[STATE] == READY
