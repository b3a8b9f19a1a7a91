"""OPC UA server for plants whose PLC or MES speaks OPC UA instead of Modbus TCP.

The node model is a pragmatic subset of OPC UA for Machine Vision (OPC 40100-1), named after it but
built here with asyncua (no companion-spec nodeset is imported, so the type definitions are plain
objects and a custom event type in this server's own namespace):

    Objects/VisionSystem                       (object; emits ResultReadyEventType)
        VisionStateMachine                     (40100: VisionStateMachineType, simplified)
            CurrentState       String   Offline | Ready | Busy | Done | Fault
            StateCode          UInt16   0 Offline, 1 Ready, 2 Busy, 3 Done, 4 Fault (the Modbus state register)
            FaultCode          UInt16   0 unless Fault
            FaultReason        String   "" unless Fault
            StartSingleJob(partId: String) -> Boolean    Ready only: inspect one part with that serial
            AcknowledgeResult() -> Boolean               Done only: result taken, back to Ready
            Reset() -> Boolean                           Fault only: back to Ready
        RecipeManagement                       (40100: RecipeManagementType, simplified)
            SelectedRecipe     UInt16   the recipe number in use
            SelectedRecipeName String   its file name
            AvailableRecipes   UInt16[] the numbers the station config knows
            SelectRecipe(recipeNo: UInt16) -> Boolean
        ResultManagement                       (40100: ResultManagementType, simplified; the Last*
                                               variables hold the result while Done, or in a Fault a
                                               part ended in, and are cleared in Ready/Busy/Offline)
            LastResult   String  PASS | FAIL | ERROR | NONE (no result to take)
            LastSerial, LastPartId, LastReason, LastRecipe  String
            LastDefects  UInt32,  LastCycleMs  UInt32,  LastRecordRow  Int64
            ResultCount  UInt32  results published since this server started
        CommandsRefused        UInt32   out-of-turn commands the controller refused and counted

40100's state machine (Preoperational, Initialized, Ready, SingleExecution, Error, ...) maps onto
ours as Offline ~ Preoperational, Ready = Ready, Busy ~ SingleExecution, Fault ~ Error; Done is the
hand-shake state in which a result waits for its acknowledgement (40100 leaves that to result
transfer). Every variable is read-only to clients: the PLC changes the station only through the
methods, and every method goes to the one StationController that the Modbus server and the window
also drive. A method called out of turn returns False (the controller counts it); none raises.

The server runs on its own thread and event loop. Controller events arrive on worker threads and
are queued onto that loop in order; a method returns only after the events its call caused have
been written, so a client reading right after a call sees their effect.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Any, Callable
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.common.methods import uamethod

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "urn:inspector:machine-vision"
STATE_NAMES = {"offline": "Offline", "ready": "Ready", "busy": "Busy", "done": "Done", "fault": "Fault"}
STATE_CODES = {"offline": 0, "ready": 1, "busy": 2, "done": 3, "fault": 4}
UNKNOWN_STATE_CODE = 0xFFFF
NO_RESULT = "NONE"
EVENT_TYPE_NAME = "ResultReadyEventType"
EVENT_FIELDS = (  # (name, type) of ResultReadyEventType's properties, beside BaseEventType's
    ("Serial", ua.VariantType.String), ("PartId", ua.VariantType.String), ("Verdict", ua.VariantType.String),
    ("Defects", ua.VariantType.UInt32), ("CycleMs", ua.VariantType.UInt32), ("RecordRow", ua.VariantType.Int64),
    ("Reason", ua.VariantType.String), ("Recipe", ua.VariantType.String), ("ResultCount", ua.VariantType.UInt32),
)
SEVERITY = {"PASS": 100, "FAIL": 500, "ERROR": 700}
START_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 2.0


class OpcUaError(OSError):
    """The server could not start (address in use, unreachable host, ...): said in one line."""


def _state_value(state: Any) -> str:
    return str(getattr(state, "value", state)).lower()


def _u32(value: Any) -> int:
    return max(0, min(int(value or 0), 0xFFFFFFFF))


def _arg(name: str, datatype: int, description: str) -> ua.Argument:
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(datatype)
    arg.ValueRank = -1
    arg.Description = ua.LocalizedText(description)
    return arg


class OpcUaServer:
    """An OPC UA face of a StationController: `start()` listens (returns once it does), `stop()` ends."""

    def __init__(self, controller: Any, url: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "opc.tcp" or not parsed.hostname or parsed.port is None:
            raise ValueError(f"OPC UA endpoint {url!r}: expected opc.tcp://HOST:PORT")
        self.controller = controller
        self.url = url
        self.namespace = namespace
        self.namespace_index: int | None = None
        self.nodes: dict[str, ua.NodeId] = {}  # browse name -> node id, for tests and tools
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._queue: asyncio.Queue | None = None
        self._vars: dict[str, Any] = {}
        self._event_gens: list[Any] = []
        self._published: Any = None
        self._result_count = 0
        self._result_since_busy = True
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifetime -----------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        if self._thread is not None:
            raise RuntimeError("OPC UA server already started")
        self._thread = threading.Thread(target=self._run, name="opcua-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise OpcUaError(f"OPC UA server on {self.url} did not start within {timeout:g} s")
        if self._error is not None:
            self._thread.join(5.0)
            self._thread = None
            raise OpcUaError(f"OPC UA server on {self.url} did not start: {self._error}") from self._error
        log.info("OPC UA server listening on %s (namespace %s)", self.url, self.namespace)

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop has already ended
                pass
        thread.join(10.0)
        self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start(), or logged once it had returned
            if self._ready.is_set():
                log.exception("OPC UA server on %s ended", self.url)
            else:
                self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._queue = asyncio.Queue()
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("Inspector vision system")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.namespace_index = await server.register_namespace(self.namespace)
        await self._build(server, self.namespace_index)
        await server.start()
        pump = None
        try:
            self._unsubscribe = self.controller.subscribe(self._on_controller_event)
            await self._publish_snapshot()
            pump = asyncio.create_task(self._pump())
            self._ready.set()
            await self._stopping.wait()
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            if pump is not None:
                pump.cancel()
            await server.stop()

    # -- the address space --------------------------------------------------------------------------

    async def _build(self, server: Server, idx: int) -> None:
        vt = ua.VariantType
        system = await server.nodes.objects.add_object(idx, "VisionSystem")
        machine = await system.add_object(idx, "VisionStateMachine")
        recipes = await system.add_object(idx, "RecipeManagement")
        results = await system.add_object(idx, "ResultManagement")
        self.nodes["VisionSystem"] = system.nodeid
        variables = (
            (machine, "CurrentState", "Offline", vt.String), (machine, "StateCode", 0, vt.UInt16),
            (machine, "FaultCode", 0, vt.UInt16), (machine, "FaultReason", "", vt.String),
            (recipes, "SelectedRecipe", 0, vt.UInt16), (recipes, "SelectedRecipeName", "", vt.String),
            (recipes, "AvailableRecipes", [], vt.UInt16),
            (results, "LastResult", NO_RESULT, vt.String), (results, "LastSerial", "", vt.String),
            (results, "LastPartId", "", vt.String), (results, "LastDefects", 0, vt.UInt32),
            (results, "LastCycleMs", 0, vt.UInt32), (results, "LastRecordRow", 0, vt.Int64),
            (results, "LastReason", "", vt.String), (results, "LastRecipe", "", vt.String),
            (results, "ResultCount", 0, vt.UInt32),
            (system, "CommandsRefused", 0, vt.UInt32),
        )
        for parent, name, value, varianttype in variables:
            node = await parent.add_variable(idx, name, ua.Variant(value, varianttype), varianttype)
            if isinstance(value, list):
                await node.write_value_rank(1)
                await node.write_array_dimensions([0])
            self._vars[name] = (node, varianttype)
            self.nodes[name] = node.nodeid
        for node in (machine, recipes, results):
            self.nodes[(await node.read_browse_name()).Name] = node.nodeid

        boolean = ua.ObjectIds.Boolean
        ok = [_arg("Accepted", boolean, "True if the station took the command; False out of turn (counted)")]
        methods = (
            (machine, "StartSingleJob", self._start_single_job,
             [_arg("partId", ua.ObjectIds.String, "the part's serial (its record's serial)")]),
            (machine, "AcknowledgeResult", self._acknowledge_result, []),
            (machine, "Reset", self._reset, []),
            (recipes, "SelectRecipe", self._select_recipe,
             [_arg("recipeNo", ua.ObjectIds.UInt16, "a recipe number of the station config")]),
        )
        for parent, name, func, inputs in methods:
            node = await parent.add_method(idx, name, func, inputs, ok)
            self.nodes[name] = node.nodeid

        etype = await server.create_custom_event_type(idx, EVENT_TYPE_NAME, ua.ObjectIds.BaseEventType,
                                                      list(EVENT_FIELDS))
        self.nodes[EVENT_TYPE_NAME] = etype.nodeid
        # the VisionSystem object emits it; so does the Server object, for clients that watch only that
        self._event_gens = [await server.get_event_generator(etype, system),
                            await server.get_event_generator(etype, ua.ObjectIds.Server)]

    async def _write(self, name: str, value: Any) -> None:
        node, varianttype = self._vars[name]
        await node.write_value(ua.Variant(value, varianttype))

    # -- controller -> variables and events ---------------------------------------------------------

    def _on_controller_event(self, event: Any) -> None:
        """Called on the controller's threads: hand the event to the server's loop, in order."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None:
            return
        try:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        except RuntimeError:  # the loop has ended (server stopped)
            pass

    async def _pump(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._apply(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop the updates
                log.exception("OPC UA: could not publish %r", event)
            finally:
                self._queue.task_done()

    async def _apply(self, event: Any) -> None:
        if hasattr(event, "result"):  # InspectionDone
            self._result_since_busy = True
            await self._publish_result(event.result)
        if hasattr(event, "state"):  # StateChanged
            value = _state_value(event.state)
            if value in ("ready", "busy", "offline"):  # as the Modbus registers: a result is shown
                await self._clear_result_variables()  # while Done (or a part's Fault) only
            if value == "busy":
                self._result_since_busy = False
            elif value == "done" and not self._result_since_busy:  # a controller that announces the
                await self._publish_result(getattr(self.controller, "last_result", None))  # result late
            await self._write_state(event.state, getattr(event, "fault_code", 0), getattr(event, "reason", ""))
        await self._write_counters()

    async def _write_state(self, state: Any, fault_code: int, reason: str) -> None:
        value = _state_value(state)
        fault = value == "fault"
        await self._write("FaultCode", max(0, min(int(fault_code or 0), 0xFFFF)) if fault else 0)
        await self._write("FaultReason", str(reason or "") if fault else "")
        await self._write("StateCode", STATE_CODES.get(value, UNKNOWN_STATE_CODE))
        await self._write("CurrentState", STATE_NAMES.get(value, value.capitalize()))

    async def _write_counters(self) -> None:
        c = self.controller
        await self._write("CommandsRefused", _u32(getattr(c, "commands_refused", 0)))
        number = int(getattr(c, "recipe_no", 0) or 0)
        recipes = dict(getattr(c, "recipes", {}) or {})
        await self._write("SelectedRecipe", max(0, min(number, 0xFFFF)))
        path = recipes.get(number)
        await self._write("SelectedRecipeName", getattr(path, "name", str(path or "")))
        await self._write("AvailableRecipes", sorted(n for n in recipes if 0 <= int(n) <= 0xFFFF))

    async def _write_result_variables(self, r: Any) -> None:
        await self._write("LastSerial", str(r.serial))
        await self._write("LastPartId", str(r.part_id or ""))
        await self._write("LastDefects", _u32(r.defects))
        await self._write("LastCycleMs", _u32(r.cycle_ms))
        await self._write("LastRecordRow", int(r.row or 0))
        await self._write("LastReason", str(r.reason or ""))
        await self._write("LastRecipe", str(r.recipe or ""))
        await self._write("LastResult", str(r.verdict))

    async def _clear_result_variables(self) -> None:
        for name in ("LastSerial", "LastPartId", "LastReason", "LastRecipe"):
            await self._write(name, "")
        for name in ("LastDefects", "LastCycleMs", "LastRecordRow"):
            await self._write(name, 0)
        await self._write("LastResult", NO_RESULT)

    async def _publish_result(self, r: Any) -> None:
        if r is None or r is self._published or r == self._published:
            return
        self._published = r
        self._result_count += 1
        await self._write_result_variables(r)
        await self._write("ResultCount", _u32(self._result_count))
        values = {"Serial": str(r.serial), "PartId": str(r.part_id or ""), "Verdict": str(r.verdict),
                  "Defects": _u32(r.defects), "CycleMs": _u32(r.cycle_ms), "RecordRow": int(r.row or 0),
                  "Reason": str(r.reason or ""), "Recipe": str(r.recipe or ""), "ResultCount": self._result_count}
        message = f"{r.verdict} {r.serial}: {r.defects} defect(s), {r.cycle_ms} ms" + (f" ({r.reason})" if r.reason else "")
        for gen in self._event_gens:
            for name, value in values.items():
                setattr(gen.event, name, value)
            gen.event.Severity = SEVERITY.get(str(r.verdict), 500)
            await gen.trigger(message=message)

    async def _publish_snapshot(self) -> None:
        c = self.controller
        await self._write_state(c.state, getattr(c, "fault_code", 0), getattr(c, "fault_reason", ""))
        last = getattr(c, "last_result", None)
        if last is not None and _state_value(c.state) not in ("ready", "busy", "offline"):  # shown, but not counted or announced: it was before this server
            self._published = last
            await self._write_result_variables(last)
        await self._write_counters()

    # -- methods (PLC -> controller) ----------------------------------------------------------------

    async def _call(self, name: str, func: Callable[..., Any], *args: Any) -> bool:
        """Run a controller command off the server's loop; False (never an exception) when refused."""
        assert self._loop is not None and self._queue is not None
        try:
            accepted = bool(await self._loop.run_in_executor(None, functools.partial(func, *args)))
        except Exception as exc:  # noqa: BLE001 - a PLC gets False, the log gets the reason
            log.warning("OPC UA %s%r refused: %s", name, args, exc)
            accepted = False
        try:  # let the variables catch up with what the command caused before the PLC reads them
            await asyncio.wait_for(self._queue.join(), SETTLE_TIMEOUT_S)
        except asyncio.TimeoutError:
            pass
        await self._write_counters()
        return accepted

    @uamethod
    async def _start_single_job(self, parent: ua.NodeId, part_id: Any) -> bool:
        if not isinstance(part_id, str):
            log.warning("OPC UA StartSingleJob refused: partId is %s, not a String", type(part_id).__name__)
            return False
        return await self._call("StartSingleJob", self.controller.inspect, part_id)

    @uamethod
    async def _acknowledge_result(self, parent: ua.NodeId) -> bool:
        return await self._call("AcknowledgeResult", self.controller.acknowledge)

    @uamethod
    async def _reset(self, parent: ua.NodeId) -> bool:
        return await self._call("Reset", self.controller.reset)

    @uamethod
    async def _select_recipe(self, parent: ua.NodeId, recipe_no: Any) -> bool:
        if isinstance(recipe_no, bool) or not isinstance(recipe_no, int):
            log.warning("OPC UA SelectRecipe refused: recipeNo is %s, not a UInt16", type(recipe_no).__name__)
            return False
        return await self._call("SelectRecipe", self.controller.select_recipe, recipe_no)
