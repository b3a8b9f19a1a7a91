"""`inspector serve`: the station headless — the controller (`inspector.station`) on the virtual cell
(`--sim`) or on a station config (`--config`), driven by a PLC over Modbus TCP (`--modbus HOST:PORT`)
and/or OPC UA (`--opcua opc.tcp://HOST:PORT`). One line per part; runs until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import threading


def add_parser(sub, default_db: str) -> None:
    serve = sub.add_parser("serve", help="run the station headless for a PLC (Modbus TCP, OPC UA)")
    where = serve.add_mutually_exclusive_group(required=True)
    where.add_argument("--sim", action="store_true", help="on the virtual cell")
    where.add_argument("--config", help="station config (TOML) of a real cell")
    serve.add_argument("--modbus", metavar="HOST:PORT", help="start the Modbus TCP server (e.g. 0.0.0.0:502)")
    serve.add_argument("--opcua", metavar="URL", help="start the OPC UA server (e.g. opc.tcp://0.0.0.0:4840)")
    serve.add_argument("--db", default=default_db, help="result store (SQLite file or postgresql:// URL)")
    serve.add_argument("--archive", help="image archive folder")
    serve.add_argument("--speed-factor", type=float, default=1.0, help="virtual cell speed (--sim only)")
    serve.add_argument("--first-seed", type=int, default=500_000, help="seed of the first virtual part")
    serve.add_argument("--recipe", action="append", default=[], metavar="N=FILE", type=_numbered_recipe,
                       help="recipe number N (the PLC's recipe_no) is FILE; repeatable (default: 1 = the reference recipe)")
    serve.set_defaults(handler=run)


def _numbered_recipe(text: str) -> tuple[int, str]:
    number, sep, path = text.partition("=")
    if not sep or not number.strip().isdigit() or not 1 <= int(number) <= 65535 or not path.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected N=FILE with N a recipe number 1–65535")
    return int(number), path.strip()


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from .access import AccessControl
    from .station import InspectionDone, StateChanged, StationController, StationState

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.speed_factor != 1.0 and not args.sim:
        raise ValueError("--speed-factor is for the virtual cell (--sim)")
    if not args.modbus and not args.opcua:
        print("inspector serve: no PLC interface (--modbus / --opcua): the station runs idle", file=sys.stderr)
    if os.path.dirname(str(args.db)) and "://" not in str(args.db):
        os.makedirs(os.path.dirname(str(args.db)), exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def say(line: str) -> None:
        print(line, flush=True)

    def on_event(event: object) -> None:
        if isinstance(event, InspectionDone):
            r = event.result
            say(f"part {r.serial!r} recipe {r.recipe}: {r.verdict} defects {r.defects} {r.cycle_ms} ms row {r.row}"
                + (f" | {r.reason}" if r.verdict == "ERROR" else ""))
        elif isinstance(event, StateChanged) and event.state == StationState.FAULT:
            say(f"FAULT {event.fault_code}: {event.reason}")

    controller = StationController(db=args.db, archive=args.archive, sim=args.sim, config=args.config,
                                   speed_factor=args.speed_factor, first_seed=args.first_seed,
                                   recipes=dict(args.recipe) or None)
    servers: list = []
    try:
        # the PLC is not an operator: the line's start is audited as a system session
        interfaces = ", ".join(x for x in (args.modbus and f"modbus {args.modbus}",
                                           args.opcua and f"opcua {args.opcua}") if x) or "none"
        AccessControl(controller.store).system_session("line", f"inspector serve ({interfaces})")
        controller.subscribe(on_event)
        controller.start()
        say(f"station {controller.state.value}" + (f" (fault {controller.fault_code}: {controller.fault_reason})"
                                                   if controller.state == StationState.FAULT else "")
            + "; recipes: " + ", ".join(f"{n}={p.name}" for n, p in sorted(controller.recipes.items())))
        if args.modbus:
            from .plc.modbus_server import ModbusPlcServer

            servers.append(ModbusPlcServer(controller, args.modbus).start())
            say(f"Modbus TCP on {args.modbus} (unit 1)")
        if args.opcua:
            if importlib.util.find_spec("inspector.plc.opcua_server") is None:
                raise ValueError("--opcua: this installation has no OPC UA server (inspector.plc.opcua_server)")
            from .plc.opcua_server import OpcUaServer

            server = OpcUaServer(controller, args.opcua)
            server.start()
            servers.append(server)
            say(f"OPC UA on {args.opcua}")
        say("serving; Ctrl+C or SIGTERM stops")
        while not stop.wait(0.5):
            pass
        say("stopping")
    finally:
        for server in reversed(servers):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - the others and the controller still close
                print(f"inspector serve: stopping {type(server).__name__}: {exc}", file=sys.stderr)
        controller.close()
    return 0
