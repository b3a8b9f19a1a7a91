"""Starting the station controller: devices (the virtual cell with `sim`, else a station config's
ports, a dry run's virtual optics), homing, and the recipe's models and cycle. Part of
StationController (inspector.station)."""
from __future__ import annotations

import logging
from pathlib import Path

from .archive import ImageArchive
from .lamps import SignalLamps
from .station_events import FAULT_DEVICES, FAULT_MODELS, Homed, ModelsReady, StationState

log = logging.getLogger("inspector.station")


class DeviceSetup:
    """Mixed into StationController: uses its lock, state, events and configuration."""

    # -- start: devices, homing, models ------------------------------------------------------------------
    def start(self) -> None:
        """Connect the devices (a virtual cell with sim), home, load the selected recipe's models:
        READY, or FAULT with the code. Blocking; does nothing when the devices are already open."""
        with self._work:
            if self.devices is not None or self._closed:
                return
            self._connect()
        self._start_watchdog()

    def _connect(self) -> bool:
        """With `_work` held: devices, homing, models. Returns True when READY."""
        from .demo import sim_station
        from .devices import open_devices

        cell = devices = None
        try:
            if self.sim:
                from hardware.sim.cell import VirtualCell

                cell = VirtualCell(seed=self.next_seed, speed_factor=self.speed_factor).start()
                config = sim_station(cell)
            else:
                config, cell = self._real_station()
            devices = open_devices(config, virtual_cell=cell)
            if cell is not None and hasattr(cell, "_stage_binding"):
                cell._stage_binding.bind(devices.motion)
            if self.home_at_start:
                devices.motion.home(60.0).wait(65.0)
        except Exception as exc:  # noqa: BLE001 - the station says why, in one line
            if devices is not None:
                devices.close()
            if cell is not None:
                cell.stop()
            self._set_state(StationState.FAULT, FAULT_DEVICES, f"connect failed: {type(exc).__name__}: {exc}")
            return False
        self.cell, self.station_config, self.devices = cell, config, devices
        self.lamps = SignalLamps(devices.motion, config.io) if config.io is not None else None
        self.homed, self.homing_required = self.home_at_start, not self.home_at_start
        if self.homed:
            self._publish(Homed())
        return self._load_cycle(self.recipes[self.recipe_no])

    def _real_station(self):
        """The station config's devices; its virtual lights or cameras (a dry run) come from a virtual
        cell without a stage of its own, rendering at the pose the real stage reports."""
        from .station_config import StationConfig

        config = StationConfig.load(self.config_path)
        if not (config.virtual_cameras or config.virtual_lights):
            return config, None
        from hardware.sim.cell import DriverStage, VirtualCell

        stage = DriverStage()
        cell = VirtualCell(seed=self.next_seed, stage=stage, light_protocol=config.lights.protocol,
                           light_channels=config.lights.channels, light_template=config.lights.template).start()
        cell._stage_binding = stage  # bound to the motion driver once it is open
        return config, cell

    def _models_for(self, recipe):
        from .demo import open_models

        key = (str(recipe.model_path("detector")), str(recipe.model_path("classifier")))
        with self._models_lock:
            if key not in self._models:
                lines: list[str] = []
                detector, classifier = open_models(recipe, out=lines.append)
                self._models[key] = (detector, classifier, tuple(lines))
            return self._models[key]

    def recipe_models(self, recipe_path: str | Path) -> tuple[str, ...]:
        """Load (once) the models of the recipe at `recipe_path` and return their lines (name, version,
        provider), e.g. to show them before the next lot. Blocking; any thread; raises when the recipe or
        its models do not load."""
        from .recipe import Recipe

        recipe = Recipe.load(recipe_path)
        check = getattr(self.station_config, "check_recipe", None)
        if check is not None:  # what _load_cycle checks too: the station's cameras
            check(recipe)
        return self._models_for(recipe)[2]

    def _load_cycle(self, recipe_path: Path, *, ready: bool = True) -> bool:
        """With `_work` held: a fresh cycle for `recipe_path` (models loaded once); READY (with `ready`),
        or FAULT 5."""
        from .cycle import InspectionCycle
        from .recipe import Recipe

        try:
            recipe = Recipe.load(recipe_path)
            check = getattr(self.station_config, "check_recipe", None)
            if check is not None:
                check(recipe)
            detector, classifier, lines = self._models_for(recipe)
        except Exception as exc:  # noqa: BLE001
            self._set_state(StationState.FAULT, FAULT_MODELS, f"recipe {Path(recipe_path).name}: {exc}")
            return False
        if self.cycle is not None:
            self.cycle.close()
        archive = ImageArchive(self.archive_dir) if self.archive_dir else None
        self.cycle = InspectionCycle(self.station_config, self.devices, recipe, detector, classifier, self.store,
                                     archive=archive, review=self.review)
        self.cycle.events.subscribe(self._publish)
        self._cycle_recipe = Path(recipe_path)
        self.model_lines = lines
        self._publish(ModelsReady(lines))
        if ready:
            self._set_state(StationState.READY)
        return True
