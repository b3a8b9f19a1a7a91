"""Modbus TCP server for a PLC: the station's handshake in holding registers (pymodbus 3.x).

Unit id 1, holding registers, 0-based addresses (who writes each):

| reg | name | writer | meaning |
|---|---|---|---|
| 0 | heartbeat | station | +1 every 500 ms, wraps at 65535 -> 0 |
| 1 | state | station | 0 offline, 1 ready, 2 busy, 3 done, 4 fault |
| 2 | command | PLC | 0 none, 1 inspect, 2 reset, 3 acknowledge result; the station writes 0 back once read |
| 3 | recipe_no | PLC | recipe number for the next inspect (0: the selected one) |
| 4 | result | station | 0 none, 1 PASS, 2 FAIL, 3 ERROR |
| 5 | defects | station | defects called on the last part |
| 6 | cycle_ms | station | the last part's cycle time in ms (saturates at 65535) |
| 7 | fault_code | station | see inspector.station (0 none) |
| 8-9 | reserved | station | 0 |
| 10-29 | serial | PLC | ASCII, two characters per register, high byte first, NUL-padded, 40 characters |

Handshake: state 1 -> PLC writes serial and recipe_no, then command 1 -> state 2 -> the station
writes result/defects/cycle_ms, then state 3 -> PLC reads them and writes command 3 -> result 0,
state 1. Fault: state 4 with fault_code; command 2 resets. A command that does not fit the state is
ignored and counted (`StationController.commands_refused`; unknown codes in `unknown_commands`).
A write to a station register is answered with ILLEGAL ADDRESS and changes nothing.

The server runs its own asyncio loop on its own thread; commands are executed on a command thread
(never on the loop), which also beats the heartbeat.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time

from ..station import InspectionDone, StateChanged, StationController, StationState

log = logging.getLogger(__name__)

UNIT_ID = 1
REG_HEARTBEAT, REG_STATE, REG_COMMAND, REG_RECIPE, REG_RESULT, REG_DEFECTS, REG_CYCLE_MS, REG_FAULT = range(8)
REG_SERIAL, SERIAL_REGS = 10, 20
REG_COUNT = REG_SERIAL + SERIAL_REGS
PLC_REGISTERS = frozenset({REG_COMMAND, REG_RECIPE, *range(REG_SERIAL, REG_SERIAL + SERIAL_REGS)})
CMD_NONE, CMD_INSPECT, CMD_RESET, CMD_ACK = 0, 1, 2, 3
STATE_CODES = {StationState.OFFLINE: 0, StationState.READY: 1, StationState.BUSY: 2, StationState.DONE: 3,
               StationState.FAULT: 4}
RESULT_CODES = {"PASS": 1, "FAIL": 2, "ERROR": 3}
HEARTBEAT_S = 0.5


def encode_serial(text: str) -> list[int]:
    """40 ASCII characters at most, two per register, high byte first, NUL-padded."""
    data = text.encode("ascii")[: 2 * SERIAL_REGS].ljust(2 * SERIAL_REGS, b"\0")
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def decode_serial(registers: list[int]) -> str:
    """The serial the PLC wrote: up to the first NUL; a byte outside printable ASCII is kept as '?'
    (the controller then refuses the serial as invalid: an ERROR result, never a silent change)."""
    data = bytearray()
    for value in registers:
        data += bytes(((value >> 8) & 0xFF, value & 0xFF))
    data = data.split(b"\0", 1)[0]
    return "".join(chr(b) if 32 <= b < 127 else "\x7f" for b in data)


def parse_host_port(text: str, default_port: int = 502) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--modbus {text!r}: expected HOST:PORT, e.g. 0.0.0.0:5020") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--modbus {text!r}: port must be 0..65535")
    return host.strip("[]") or "0.0.0.0", number


class ModbusPlcServer:
    """`ModbusPlcServer(controller, "0.0.0.0:502").start()` ... `.stop()`."""

    def __init__(self, controller: StationController, address: str | tuple[str, int] = "0.0.0.0:502"):
        self.controller = controller
        self.host, self.port = parse_host_port(address) if isinstance(address, str) else address
        self.unknown_commands = 0
        self.commands_received = 0
        self._regs = [0] * REG_COUNT
        self._lock = threading.Lock()
        self._commands: queue.Queue[int | None] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        self._unsubscribe = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- registers -------------------------------------------------------------------------------------
    def registers(self) -> list[int]:
        with self._lock:
            return list(self._regs)

    def _sync_from_controller(self) -> None:
        c = self.controller
        with self._lock:
            self._regs[REG_STATE] = STATE_CODES[c.state]
            self._regs[REG_FAULT] = c.fault_code if c.state == StationState.FAULT else 0
            self._show_result(c.last_result)

    def _show_result(self, result) -> None:  # with the lock
        if result is None:
            self._regs[REG_RESULT] = self._regs[REG_DEFECTS] = self._regs[REG_CYCLE_MS] = 0
        else:
            self._regs[REG_RESULT] = RESULT_CODES.get(result.verdict, 3)
            self._regs[REG_DEFECTS] = max(0, min(65535, result.defects))
            self._regs[REG_CYCLE_MS] = max(0, min(65535, result.cycle_ms))

    def _on_event(self, event: object) -> None:
        """Controller events (worker threads): the result before the state that announces it."""
        if isinstance(event, InspectionDone):
            with self._lock:
                self._show_result(event.result)
        elif isinstance(event, StateChanged):
            with self._lock:
                if event.state in (StationState.READY, StationState.BUSY, StationState.OFFLINE):
                    self._show_result(None)
                self._regs[REG_FAULT] = event.fault_code if event.state == StationState.FAULT else 0
                self._regs[REG_STATE] = STATE_CODES[event.state]

    async def _action(self, function_code, start_address, address, count, registers, values):
        """Every request: the live block shows the station's registers; a PLC write lands in them
        (PLC registers only) and a non-zero command is queued for the command thread."""
        from pymodbus.constants import ExcCodes

        with self._lock:
            if values is not None and not isinstance(values, list):
                values = [values]
            if values:
                addresses = range(address, address + len(values))
                if any(a not in PLC_REGISTERS for a in addresses):
                    return ExcCodes.ILLEGAL_ADDRESS
                for a, v in zip(addresses, values):
                    self._regs[a] = int(v) & 0xFFFF
                    if a == REG_COMMAND and v:
                        self._commands.put(int(v))
            registers[:] = [self._regs[start_address + i] if 0 <= start_address + i < REG_COUNT else 0
                            for i in range(len(registers))]
        return None

    # -- commands --------------------------------------------------------------------------------------
    def _command_loop(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_S
        while True:
            try:
                command = self._commands.get(timeout=max(0.0, next_beat - time.monotonic()))
            except queue.Empty:
                command = CMD_NONE
            if command is None:
                return
            now = time.monotonic()
            if now >= next_beat:
                with self._lock:
                    self._regs[REG_HEARTBEAT] = (self._regs[REG_HEARTBEAT] + 1) & 0xFFFF
                next_beat += HEARTBEAT_S * max(1, int((now - next_beat) / HEARTBEAT_S) + 1)
            if command != CMD_NONE:
                self._execute(command)

    def _execute(self, command: int) -> None:
        with self._lock:
            self._regs[REG_COMMAND] = 0  # read: written back to 0 before it runs
            serial = decode_serial(self._regs[REG_SERIAL:REG_SERIAL + SERIAL_REGS])
            recipe_no = self._regs[REG_RECIPE]
        self.commands_received += 1
        c = self.controller
        if command == CMD_INSPECT:
            accepted = c.inspect(serial, recipe_no=recipe_no or None)
        elif command == CMD_RESET:
            accepted = c.reset()
        elif command == CMD_ACK:
            accepted = c.acknowledge()
        else:
            self.unknown_commands += 1
            accepted = False
        log.info("PLC command %d%s: %s", command, f" serial {serial!r} recipe {recipe_no}" if command == 1 else "",
                 "accepted" if accepted else f"ignored in state {c.state.value}")

    # -- life cycle -------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "ModbusPlcServer":
        self._unsubscribe = self.controller.subscribe(self._on_event)
        self._sync_from_controller()
        self._worker = threading.Thread(target=self._command_loop, name="modbus-commands", daemon=True)
        self._worker.start()
        self._thread = threading.Thread(target=self._serve, name="modbus-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise OSError(f"Modbus TCP server on {self.host}:{self.port} did not start: {self._error or 'timeout'}")
        log.info("Modbus TCP server on %s:%d (unit %d)", self.host, self.port, UNIT_ID)
        return self

    def _serve(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            device = SimDevice(UNIT_ID, simdata=[SimData(0, count=REG_COUNT, values=0, datatype=DataType.REGISTERS)],
                               action=self._action)

            async def listen():  # the server binds to the running loop
                self._server = ModbusTcpServer(device, address=(self.host, self.port))
                await self._server.serve_forever(background=True)

            loop.run_until_complete(listen())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                if self._server is not None:
                    loop.run_until_complete(self._server.shutdown())
            except Exception:  # noqa: BLE001
                pass
            loop.close()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._commands.put(None)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        for thread in (self._thread, self._worker):
            if thread is not None and thread is not threading.current_thread():
                thread.join(10.0)

    def __enter__(self) -> "ModbusPlcServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
