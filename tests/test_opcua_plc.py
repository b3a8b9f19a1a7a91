"""The OPC UA server (OPC 40100 subset) driven by a real asyncua client on loopback.

A fast test against a fake controller checks the node model, the handshake, refusals and the
ResultReady event; the lot test runs `inspector serve --sim --opcua` and checks the records carry
the serials the client wrote.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from asyncua import Client, ua

from inspector.plc.opcua_server import DEFAULT_NAMESPACE, EVENT_TYPE_NAME, OpcUaError, OpcUaServer
from inspector.station_events import InspectionDone, PartResult, StateChanged, StationState


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a fake of inspector.station.StationController's interface (its own vocabulary) -------------------

class FakeController:
    """The controller's handshake: inspect in READY, acknowledge in DONE, reset in FAULT; else counted."""

    def __init__(self) -> None:
        self.state = StationState.OFFLINE
        self.fault_code = 0
        self.fault_reason = ""
        self.last_result: PartResult | None = None
        self.recipes = {1: Path("/recipes/housing-40x30.recipe.json"), 2: Path("/recipes/housing-60x40.recipe.json")}
        self.recipe_no = 1
        self.commands_refused = 0
        self.inspected: list[str] = []
        self._subs: list = []
        self._lock = threading.Lock()
        self._rows = 0

    def subscribe(self, callback):
        self._subs.append(callback)
        return lambda: self._subs.remove(callback)

    def _emit(self, event) -> None:
        for cb in list(self._subs):
            cb(event)

    def _to(self, state: StationState, code: int = 0, reason: str = "") -> None:
        self.state, self.fault_code, self.fault_reason = state, code, reason
        self._emit(StateChanged(state, code, reason))

    def _refuse(self) -> bool:
        self.commands_refused += 1
        return False

    def start(self) -> None:
        self._to(StationState.READY)

    def select_recipe(self, number: int) -> bool:
        with self._lock:
            if self.state is not StationState.READY or number not in self.recipes:
                return self._refuse()
            self.recipe_no = number
            return True

    def inspect(self, serial: str, *, part_id=None, recipe_no=None) -> bool:
        with self._lock:
            if self.state is not StationState.READY:
                return self._refuse()
            self._to(StationState.BUSY)
        threading.Thread(target=self._cycle, args=(serial,), daemon=True).start()
        return True

    def _cycle(self, serial: str) -> None:
        time.sleep(0.05)
        with self._lock:
            self._rows += 1
            self.inspected.append(serial)
            verdict = "FAIL" if serial.endswith("3") else "PASS"
            self.last_result = PartResult(serial, serial, verdict, int(verdict == "FAIL"), 1234, self._rows,
                                          "scratch 0.8 mm > 0.5 mm" if verdict == "FAIL" else "",
                                          self.recipes[self.recipe_no].name)
            if serial.endswith("2"):  # a controller may announce the result after the state, too
                self._to(StationState.DONE)
                self._emit(InspectionDone(self.last_result))
            else:
                self._emit(InspectionDone(self.last_result))
                self._to(StationState.DONE)

    def acknowledge(self) -> bool:
        with self._lock:
            if self.state is not StationState.DONE:
                return self._refuse()
            self._to(StationState.READY)
            return True

    def reset(self) -> bool:
        with self._lock:
            if self.state is not StationState.FAULT:
                return self._refuse()
            self._to(StationState.READY)
            return True

    def fault(self, code: int, reason: str) -> None:
        with self._lock:
            self._to(StationState.FAULT, code, reason)

    def close(self) -> None:
        pass


# -- a PLC-side client -------------------------------------------------------------------------------

class Events:
    def __init__(self) -> None:
        self.received: list = []

    def event_notification(self, event) -> None:
        self.received.append(event)


class Plc:
    """What a PLC program does: browse once, call methods, poll CurrentState."""

    def __init__(self, client: Client, ns: int) -> None:
        self.client, self.ns = client, ns

    @classmethod
    async def connect(cls, url: str) -> "Plc":
        client = Client(url, timeout=10)
        await client.connect()
        plc = cls(client, await client.get_namespace_index(DEFAULT_NAMESPACE))
        plc.system = await client.nodes.objects.get_child(f"{plc.ns}:VisionSystem")
        plc.machine = await plc.system.get_child(f"{plc.ns}:VisionStateMachine")
        plc.recipes = await plc.system.get_child(f"{plc.ns}:RecipeManagement")
        plc.results = await plc.system.get_child(f"{plc.ns}:ResultManagement")
        return plc

    def node(self, parent, name: str):
        return parent.get_child(f"{self.ns}:{name}")

    async def read(self, parent, name: str):
        return await (await self.node(parent, name)).read_value()

    async def call(self, parent, name: str, *args):
        return await parent.call_method(f"{self.ns}:{name}", *args)

    async def state(self) -> str:
        return await self.read(self.machine, "CurrentState")

    async def wait_state(self, *names: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = await self.state()
            if state in names:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"CurrentState {state!r}, expected one of {names} within {timeout} s")
            await asyncio.sleep(0.02)


# -- against the fake controller ---------------------------------------------------------------------

async def _drive_fake(url: str, fake: FakeController) -> None:
    plc = await Plc.connect(url)
    try:
        # the node model: names, types, access
        vt = ua.VariantType
        expected = {
            (plc.machine, "CurrentState"): vt.String, (plc.machine, "StateCode"): vt.UInt16,
            (plc.machine, "FaultCode"): vt.UInt16, (plc.machine, "FaultReason"): vt.String,
            (plc.recipes, "SelectedRecipe"): vt.UInt16, (plc.recipes, "SelectedRecipeName"): vt.String,
            (plc.recipes, "AvailableRecipes"): vt.UInt16,
            (plc.results, "LastResult"): vt.String, (plc.results, "LastSerial"): vt.String,
            (plc.results, "LastPartId"): vt.String, (plc.results, "LastDefects"): vt.UInt32,
            (plc.results, "LastCycleMs"): vt.UInt32, (plc.results, "LastRecordRow"): vt.Int64,
            (plc.results, "LastReason"): vt.String, (plc.results, "LastRecipe"): vt.String,
            (plc.results, "ResultCount"): vt.UInt32, (plc.system, "CommandsRefused"): vt.UInt32,
        }
        for (parent, name), varianttype in expected.items():
            node = await plc.node(parent, name)
            assert (await node.read_data_value()).Value.VariantType == varianttype, name
            with pytest.raises(ua.UaStatusCodeError):  # read-only: the PLC acts through the methods
                await node.write_value(ua.Variant(await node.read_value(), varianttype))
        for parent, name, inputs in ((plc.machine, "StartSingleJob", ["partId"]), (plc.machine, "AcknowledgeResult", []),
                                     (plc.machine, "Reset", []), (plc.recipes, "SelectRecipe", ["recipeNo"])):
            method = await plc.node(parent, name)
            assert await method.read_node_class() == ua.NodeClass.Method
            args = [c for c in await method.get_children() if (await c.read_browse_name()).Name == "InputArguments"]
            got = [a.Name for a in await args[0].read_value()] if args else []
            assert got == inputs, name

        assert await plc.state() == "Ready" and await plc.read(plc.machine, "StateCode") == 1
        assert await plc.read(plc.results, "LastResult") == "NONE"
        assert await plc.read(plc.recipes, "AvailableRecipes") == [1, 2]
        assert await plc.read(plc.recipes, "SelectedRecipeName") == "housing-40x30.recipe.json"

        events = Events()
        sub = await plc.client.create_subscription(20, events)
        etype = await plc.client.nodes.base_event_type.get_child(f"{plc.ns}:{EVENT_TYPE_NAME}")
        await sub.subscribe_events(plc.system, etype)

        # out of turn before anything: refused, counted, state unchanged
        assert await plc.call(plc.machine, "AcknowledgeResult") is False
        assert await plc.call(plc.machine, "Reset") is False
        assert await plc.read(plc.system, "CommandsRefused") == 2 and await plc.state() == "Ready"

        assert await plc.call(plc.recipes, "SelectRecipe", ua.Variant(2, vt.UInt16)) is True
        assert await plc.read(plc.recipes, "SelectedRecipe") == 2
        assert await plc.call(plc.recipes, "SelectRecipe", ua.Variant(9, vt.UInt16)) is False  # unknown number

        serials = ["OPC-FAKE-1", "OPC-FAKE-2", "OPC-FAKE-3"]
        for n, serial in enumerate(serials, 1):
            assert await plc.call(plc.machine, "StartSingleJob", serial) is True
            result_while_busy = await plc.read(plc.results, "LastResult")
            if await plc.state() == "Busy":  # still busy after that read: no stale verdict was shown
                assert result_while_busy == "NONE"
            assert await plc.call(plc.machine, "StartSingleJob", "OPC-EXTRA") is False  # busy or done: refused
            assert await plc.wait_state("Done") == "Done"
            assert await plc.read(plc.machine, "StateCode") == 3
            assert await plc.read(plc.results, "LastSerial") == serial
            assert await plc.read(plc.results, "LastResult") == ("FAIL" if serial.endswith("3") else "PASS")
            assert await plc.read(plc.results, "ResultCount") == n
            assert await plc.read(plc.results, "LastCycleMs") == 1234
            assert await plc.read(plc.results, "LastRecordRow") == n
            assert await plc.read(plc.results, "LastRecipe") == "housing-60x40.recipe.json"
            if serial.endswith("3"):
                assert await plc.read(plc.results, "LastDefects") == 1
                assert await plc.read(plc.results, "LastReason") == "scratch 0.8 mm > 0.5 mm"
            assert await plc.call(plc.machine, "AcknowledgeResult") is True
            assert await plc.state() == "Ready"
            # taken: cleared, as the Modbus result registers are
            assert await plc.read(plc.results, "LastResult") == "NONE"
            assert await plc.read(plc.results, "LastSerial") == "" and await plc.read(plc.results, "LastDefects") == 0
            assert await plc.read(plc.results, "ResultCount") == n
        assert fake.inspected == serials

        # a fault: shown with code and reason; commands refused until Reset
        fake.fault(17, "motion: ALARM:1 hard limit")
        assert await plc.wait_state("Fault") == "Fault"
        assert await plc.read(plc.machine, "StateCode") == 4
        assert await plc.read(plc.machine, "FaultCode") == 17
        assert await plc.read(plc.machine, "FaultReason") == "motion: ALARM:1 hard limit"
        assert await plc.call(plc.machine, "StartSingleJob", "OPC-IN-FAULT") is False
        assert await plc.call(plc.machine, "AcknowledgeResult") is False
        assert await plc.call(plc.machine, "Reset") is True
        assert await plc.state() == "Ready"
        assert await plc.read(plc.machine, "FaultCode") == 0 and await plc.read(plc.machine, "FaultReason") == ""

        # a wrong argument type is a refusal too, not an exception
        assert await plc.call(plc.machine, "StartSingleJob", ua.Variant(5, vt.Int32)) is False
        # refusals: ack+reset, unknown recipe, 3 extra starts, 2 in fault; the server's own type check not counted
        assert await plc.read(plc.system, "CommandsRefused") == fake.commands_refused == 8
        assert fake.inspected == serials

        deadline = time.monotonic() + 5
        while len(events.received) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [e.Serial for e in events.received] == serials
        last = events.received[-1]
        assert (last.Verdict, last.Defects, last.CycleMs, last.ResultCount, last.RecordRow) == ("FAIL", 1, 1234, 3, 3)
        assert last.Message.Text.startswith("FAIL OPC-FAKE-3")
        await sub.delete()
    finally:
        await plc.client.disconnect()


def test_fake_controller_handshake_node_model_and_event():
    fake = FakeController()
    fake.start()
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    server = OpcUaServer(fake, url)
    server.start()
    try:
        asyncio.run(asyncio.wait_for(_drive_fake(url, fake), 60))
    finally:
        server.stop()
    assert fake._subs == []  # unsubscribed on stop


def test_start_refuses_a_bad_url_and_a_taken_port():
    with pytest.raises(ValueError, match="opc.tcp://HOST:PORT"):
        OpcUaServer(FakeController(), "http://127.0.0.1:4840")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"opc.tcp://127.0.0.1:{taken.getsockname()[1]}"
        server = OpcUaServer(FakeController(), url)
        with pytest.raises(OpcUaError, match="did not start") as info:
            server.start()
        assert "\n" not in str(info.value)
        server.stop()  # harmless after a failed start


# -- against the real station controller on the virtual cell --------------------------------------------

BROKEN_RECIPE = '{"id": "broken", "version": '  # a recipe file cut short: the station cannot load it


async def _drive_station(url: str, serials: list[str], fix_recipe_2=None) -> list:
    """The PLC's side of a lot: three parts, a command out of turn, a fault and its Reset."""
    deadline = time.monotonic() + 30
    while True:  # the server may still be starting (a subprocess)
        try:
            plc = await Plc.connect(url)
            break
        except (OSError, asyncio.TimeoutError, ua.UaError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    vt = ua.VariantType
    try:
        assert await plc.wait_state("Ready", "Fault", timeout=30) == "Ready"
        refused = await plc.read(plc.system, "CommandsRefused")

        # out of turn: acknowledging with no result is refused, counted, and changes nothing
        assert await plc.call(plc.machine, "AcknowledgeResult") is False
        assert await plc.state() == "Ready"
        assert await plc.read(plc.system, "CommandsRefused") == refused + 1

        events = Events()
        sub = await plc.client.create_subscription(20, events)
        etype = await plc.client.nodes.base_event_type.get_child(f"{plc.ns}:{EVENT_TYPE_NAME}")
        await sub.subscribe_events(plc.system, etype)

        count = await plc.read(plc.results, "ResultCount")
        for n, serial in enumerate(serials, 1):
            assert await plc.call(plc.machine, "StartSingleJob", serial) is True
            assert await plc.state() in ("Busy", "Done")
            assert await plc.call(plc.machine, "StartSingleJob", serial + "-TWICE") is False  # busy (or done)
            assert await plc.wait_state("Done", "Fault", timeout=30) == "Done", await plc.read(plc.machine, "FaultReason")
            assert await plc.read(plc.results, "LastSerial") == serial
            assert await plc.read(plc.results, "LastPartId") == serial
            assert await plc.read(plc.results, "LastResult") in ("PASS", "FAIL", "ERROR")
            assert await plc.read(plc.results, "LastRecordRow") > 0
            assert await plc.read(plc.results, "LastCycleMs") > 0
            assert await plc.read(plc.results, "ResultCount") == count + n
            assert await plc.call(plc.machine, "StartSingleJob", serial + "-AGAIN") is False  # result not taken yet
            assert await plc.call(plc.machine, "AcknowledgeResult") is True
            assert await plc.state() == "Ready"
        assert await plc.read(plc.system, "CommandsRefused") == refused + 1 + 2 * len(serials)
        if fix_recipe_2 is None:  # no fault to be had from the client: Reset's own semantics
            assert await plc.call(plc.machine, "Reset") is True  # in Ready the station re-homes: Busy, then Ready
            assert await plc.state() in ("Busy", "Ready")
            assert await plc.wait_state("Ready", "Fault", timeout=30) == "Ready"
            assert await plc.read(plc.system, "CommandsRefused") == refused + 1 + 2 * len(serials)
            return await _events(events, sub, len(serials))

        # a fault the PLC runs into: recipe 2's file cannot be loaded
        assert await plc.call(plc.recipes, "SelectRecipe", ua.Variant(2, vt.UInt16)) is True
        assert await plc.read(plc.recipes, "SelectedRecipe") == 2
        assert await plc.call(plc.machine, "StartSingleJob", "OPC-NOT-INSPECTED") is True
        assert await plc.wait_state("Fault", "Done", timeout=30) == "Fault"
        assert await plc.read(plc.machine, "StateCode") == 4
        assert await plc.read(plc.machine, "FaultCode") == 5  # models or recipe could not load
        assert "recipe" in await plc.read(plc.machine, "FaultReason")
        assert await plc.call(plc.machine, "StartSingleJob", "OPC-IN-FAULT") is False
        assert await plc.call(plc.machine, "AcknowledgeResult") is False
        assert await plc.call(plc.recipes, "SelectRecipe", ua.Variant(1, vt.UInt16)) is False  # not in Fault
        # a Reset with the cause still there ends in Fault again
        assert await plc.call(plc.machine, "Reset") is True
        assert await plc.wait_state("Fault", "Ready", timeout=30) == "Fault"
        fix_recipe_2()
        assert await plc.call(plc.machine, "Reset") is True
        assert await plc.wait_state("Ready", "Fault", timeout=30) == "Ready"
        assert await plc.read(plc.machine, "FaultCode") == 0 and await plc.read(plc.machine, "StateCode") == 1
        assert await plc.call(plc.recipes, "SelectRecipe", ua.Variant(1, vt.UInt16)) is True
        assert await plc.read(plc.system, "CommandsRefused") == refused + 4 + 2 * len(serials)
        return await _events(events, sub, len(serials))
    finally:
        await plc.client.disconnect()


async def _events(events: Events, sub, count: int) -> list:
    deadline = time.monotonic() + 5
    while len(events.received) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await sub.delete()
    return events.received


def _serials(tag: str) -> list[str]:
    return [f"OPC-{tag}-{time.time_ns() % 10**8:08d}-{n}" for n in (1, 2, 3)]


def _db_serials(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT serial FROM parts ORDER BY id")]


def test_station_controller_in_process_lot_with_fault_and_reset(tmp_path, recipe):
    from inspector.station import StationController

    broken = tmp_path / "recipe-2.json"
    broken.write_text(BROKEN_RECIPE)
    db = tmp_path / "results.db"
    controller = StationController(db=str(db), sim=True, speed_factor=200, recipes={1: recipe, 2: broken})
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    serials = _serials("INPROC")
    try:
        controller.start()
        server = OpcUaServer(controller, url)
        server.start()
        try:
            events = asyncio.run(asyncio.wait_for(
                _drive_station(url, serials, lambda: broken.write_text(recipe.read_text())), 120))
        finally:
            server.stop()
    finally:
        controller.close()
    assert [e.Serial for e in events] == serials
    assert _db_serials(db) == serials


def test_plc_drives_inspector_serve_over_opcua(tmp_path):
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}"
    db = tmp_path / "line.db"
    proc = subprocess.Popen([sys.executable, "-m", "inspector.cli", "serve", "--sim", "--opcua", url,
                             "--db", str(db), "--speed-factor", "200"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    serials = _serials("SERVE")
    try:
        events = asyncio.run(asyncio.wait_for(_drive_station(url, serials), 90))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"OPC UA on {url}" in out and "stopping" in out, out
    assert all(f"part '{s}'" in out for s in serials), out
    assert [e.Serial for e in events] == serials
    assert _db_serials(db) == serials
