"""How long the driver takes to learn that a move ended: `G4 P0` (answered once the planner is empty)
against the status polls alone, on the same moves of the emulated stage in real time.

Per move: wall seconds from `move_to` to the Status finishing, less the machine model's time for
that move (`hardware.sim.dynamics.move_time_s`, settle included) — the driver's overhead."""
from __future__ import annotations

from hardware.motion.grblhal import GrblHalController
from hardware.pose import StagePose
from hardware.sim.dynamics import Dynamics, move_time_s
from hardware.sim.grbl_emulator import GrblEmulator
from hardware.transport import LineTransport

from .stats import summary

# fine-shot-like steps on one face, then a rotation to the next face (stage frame)
MOVES = [StagePose(60.0, 5.0, 56.0, 0.0, 0.0), StagePose(72.0, 11.0, 56.0, 0.0, 0.0), StagePose(48.0, -4.0, 56.0, 0.0, 0.0),
         StagePose(0.0, 0.0, 45.0, 90.0, 0.0), StagePose(57.0, 1.0, 45.0, 90.0, 0.0), StagePose(0.0, 0.0, 56.0, 0.0, 0.0)]


def measure(rounds: int = 4) -> dict:
    """Overhead per move (s) with and without the dwell, `rounds` × len(MOVES) moves each."""
    out = {}
    with GrblEmulator(speed_factor=1.0, homing_required=False) as emulator:
        dynamics = Dynamics.of(emulator.limits, emulator.settle_s)
        stage = GrblHalController(LineTransport(emulator.port_path, name="motion", read_timeout_s=1.0),
                                  origin=emulator.stage_origin)
        stage.connect()
        try:
            for sync in (False, True):
                stage.sync_moves = sync
                overheads = []
                stage.move_to(MOVES[-1]).wait(10)
                here = MOVES[-1]
                for _ in range(rounds):
                    for pose in MOVES:
                        status = stage.move_to(pose)
                        status.wait(10)
                        overheads.append(status.elapsed_s - move_time_s(here, pose, dynamics))
                        here = pose
                out["dwell" if sync else "polls"] = summary(overheads)
        finally:
            stage.disconnect()
    out["poll_interval_s"] = 0.02
    return out
