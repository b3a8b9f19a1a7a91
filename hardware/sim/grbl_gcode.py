"""The grblHAL G-code block checks the emulator needs, as gcode.c `gc_execute_block` makes them:
a block is parsed and checked whole before anything executes, so a failed block changes nothing.
Pure functions: a line in, a Block or an error code (errors.h `status_code_t`) out.

Supported: G0 G1 (motion), G4 (dwell, P in seconds), G10 L2/L20 (work offsets, P0 = active
system), G17–G19, G20/G21, G28/G30 (stored positions), G53 (machine coordinates, only with G0/G1),
G54–G59.3, G80, G90/G91, G92/G92.1, G93/G94, G49; M2 M30 (program end), M3 M4 M5 M8 M9; F N.
Anything else is error 20, as on a build without that feature (M7 without mist, no probe, …).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

LETTERS = "XYZAB"
WORD = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))?")
WORK_SYSTEMS = (54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 59.1, 59.2, 59.3)
WORK_SYSTEM_NAMES = ("G54", "G55", "G56", "G57", "G58", "G59", "G59.1", "G59.2", "G59.3")
MODAL_GROUPS = {  # G-codes of one modal group may not share a block (error 21)
    "motion": {0.0, 1.0, 80.0}, "plane": {17.0, 18.0, 19.0}, "units": {20.0, 21.0}, "distance": {90.0, 91.0},
    "feed_mode": {93.0, 94.0}, "tlo": {49.0}, "wcs": set(WORK_SYSTEMS),
    "non_modal": {4.0, 10.0, 28.0, 30.0, 53.0, 92.0, 92.1},
}
M_GROUPS = {"stop": {2.0, 30.0}, "spindle": {3.0, 4.0, 5.0}, "coolant": {8.0, 9.0},
            "io": {62.0, 63.0, 64.0, 65.0, 66.0}}  # io: digital outputs (synced / immediate), wait on input
AUX_PORTS = 4  # digital inputs and outputs of the emulated board (hal.port.num_digital_in / _out)
VALUE_OUT_OF_RANGE, VALUE_WORD_CONFLICT = 39, 48
WAIT_MODES = 5  # M66 L: 0 immediate, 1 rise, 2 fall, 3 high, 4 low (wait_mode_t)
AXIS_COMMANDS = {10.0, 28.0, 30.0, 92.0}  # non-modal commands that use axis words

# errors.h status codes used here
LETTER_NOT_FOUND, BAD_NUMBER, NEGATIVE_VALUE, OVERFLOW = 1, 2, 4, 11
UNSUPPORTED, MODAL_VIOLATION, UNDEFINED_FEED, NOT_INTEGER = 20, 21, 22, 23
AXIS_CONFLICT, REPEATED_WORD, NO_AXIS_WORDS, VALUE_WORD_MISSING = 24, 25, 26, 28
UNSUPPORTED_COORD_SYS, G53_MOTION_MODE, AXIS_WORDS_EXIST, UNUSED_WORDS = 29, 30, 31, 36


@dataclass
class Block:
    motion: int | None = None  # 0 or 1 when the block moves (or sets the mode)
    non_modal: float | None = None  # 4, 10, 28, 30, 53, 92, 92.1
    distance: float | None = None
    units: float | None = None
    wcs: int | None = None  # index 0..8 of G54..G59.3
    program_end: bool = False
    io: int | None = None  # M62–M66
    q: float | None = None
    axes: dict[str, float] = field(default_factory=dict)
    feed: float | None = None  # units/min as written
    p: float | None = None
    l: float | None = None  # noqa: E741 - the G-code word's name


def words(line: str) -> list[tuple[str, float]] | int:
    """The block's (letter, value) words, or the error code of a malformed word."""
    found, position = [], 0
    for match in WORD.finditer(line):
        if match.start() != position:
            break
        position = match.end()
        if match.group(2) is None:
            return BAD_NUMBER
        found.append((match.group(1), float(match.group(2))))
    return found if position == len(line) else LETTER_NOT_FOUND


def parse_block(line: str, *, motion_mode: int | None, has_feed: bool) -> Block | int:
    """Check one G-code block (upper case, spaces removed) against grblHAL's rules."""
    parsed = words(line)
    if isinstance(parsed, int):
        return parsed
    block, groups, seen = Block(), set(), set()
    for letter, value in parsed:
        if letter == "G":
            group = next((name for name, codes in MODAL_GROUPS.items() if value in codes), None)
            if group is None:
                return UNSUPPORTED
            if group in groups:
                return MODAL_VIOLATION
            groups.add(group)
            if group == "motion":
                block.motion = None if value == 80.0 else int(value)
            elif group == "non_modal":
                block.non_modal = value
            elif group == "distance":
                block.distance = value
            elif group == "units":
                block.units = value
            elif group == "wcs":
                block.wcs = WORK_SYSTEMS.index(value)
        elif letter == "M":
            group = next((name for name, codes in M_GROUPS.items() if value in codes), None)
            if group is None:
                return UNSUPPORTED
            if group in groups:
                return MODAL_VIOLATION
            groups.add(group)
            block.program_end = block.program_end or group == "stop"
            if group == "io":
                block.io = int(value)
        else:
            if letter in seen:
                return REPEATED_WORD
            seen.add(letter)
            if letter in LETTERS:
                block.axes[letter] = value
            elif letter == "F":
                if value < 0:
                    return NEGATIVE_VALUE
                block.feed = value
            elif letter == "P":
                block.p = value
            elif letter == "L":
                block.l = value
            elif letter == "Q":
                block.q = value
            elif letter == "N":
                if value != int(value) or value < 0:
                    return 27
            elif letter in "ST":
                continue  # spindle speed and tool: consumed without effect (gcode.c clears words s, t)
            elif letter in "IJKRHDE":
                return UNUSED_WORDS  # no command here uses them
            else:
                return LETTER_NOT_FOUND
    return _check(block, motion_mode, has_feed)


def _check(block: Block, motion_mode: int | None, has_feed: bool) -> Block | int:
    command = block.non_modal
    if command in AXIS_COMMANDS and block.motion is not None and block.axes:
        return AXIS_CONFLICT
    if command == 4.0:  # G4 P<seconds>
        if block.p is None:
            return VALUE_WORD_MISSING
        if block.p < 0:
            return NEGATIVE_VALUE
        used_p = True
    else:
        used_p = False
    if block.io is not None:  # gcode.c: M62–M65 need P (an output port); M66 needs L or Q, P an input port
        if block.p is None and (block.io != 66 or block.l is None and block.q is None):
            return VALUE_WORD_MISSING
        if block.io == 66:
            if block.l is None and block.q is None:
                return VALUE_WORD_MISSING
            mode, timeout = int(block.l or 0), block.q or 0.0
            if mode >= WAIT_MODES or mode != 0 and timeout == 0.0:
                return VALUE_OUT_OF_RANGE
            block.l, block.q = float(mode), float(timeout)
        if block.p is None:
            return VALUE_WORD_MISSING
        if block.p < 0:
            return NEGATIVE_VALUE
        if int(block.p) + 1 > AUX_PORTS:
            return VALUE_OUT_OF_RANGE
        return block
    if block.q is not None:
        return UNUSED_WORDS
    if command == 10.0:  # G10 L2 / L20 P<n>
        if not block.axes:
            return NO_AXIS_WORDS
        if block.p is None or block.l is None:
            return VALUE_WORD_MISSING
        if block.l not in (2.0, 20.0):
            return UNSUPPORTED
        if block.p != int(block.p):
            return NOT_INTEGER
        if not 0 <= block.p <= len(WORK_SYSTEMS):
            return UNSUPPORTED_COORD_SYS
        used_p = True
    elif block.l is not None:
        return UNUSED_WORDS
    if block.p is not None and not used_p:
        return UNUSED_WORDS
    if command == 53.0 and (block.motion if block.motion is not None else motion_mode) not in (0, 1):
        return G53_MOTION_MODE
    if command == 92.0 and not block.axes:
        return NO_AXIS_WORDS
    if block.axes and command in (4.0, 92.1):
        return AXIS_WORDS_EXIST
    mode = block.motion if block.motion is not None else motion_mode
    moving = bool(block.axes) and command not in AXIS_COMMANDS
    if moving and mode is None:
        return AXIS_WORDS_EXIST  # G80 active: axis words without a motion mode
    if moving and mode == 1 and not (has_feed or block.feed):
        return UNDEFINED_FEED
    return block


@dataclass
class ParserState:
    """gcode.c `gc_state`: the modal state, the parser's position (MPos of the end of what is queued,
    unrounded), and the work offsets: G54–G59.3 persist in the controller (NVS), G92 until power off."""

    coords: list[tuple[float, ...]] = field(default_factory=lambda: [(0.0,) * 5 for _ in WORK_SYSTEMS])
    stored: dict[str, tuple[float, ...]] = field(default_factory=lambda: {"G28": (0.0,) * 5, "G30": (0.0,) * 5})
    g92: tuple[float, ...] = (0.0,) * 5
    wcs: int = 0
    absolute: bool = True
    inches: bool = False
    motion: int | None = 0
    feed: float | None = None  # mm/min
    position: tuple[float, ...] = (0.0,) * 5

    def reset(self, position: tuple[float, ...]) -> None:
        """gc_init after a soft reset or program end: modal defaults, position from the steppers."""
        self.wcs, self.absolute, self.inches, self.motion, self.feed = 0, True, False, 0, None
        self.position = position

    @property
    def unit(self) -> float:
        return 25.4 if self.inches else 1.0

    def wco(self) -> tuple[float, ...]:
        """gc_get_offset: the active system + G92 (no tool length offsets here)."""
        return tuple(c + g for c, g in zip(self.coords[self.wcs], self.g92))

    def target(self, axes: dict[str, float], absolute: bool, machine: bool) -> tuple[float, ...]:
        """MPos of a block's target: G53 raw machine coordinates, else work coordinates or increments."""
        wco, result = self.wco(), []
        for i, letter in enumerate(LETTERS):
            if letter not in axes:
                result.append(self.position[i])
            elif machine:
                result.append(axes[letter] * self.unit)
            elif absolute:
                result.append(axes[letter] * self.unit + wco[i])
            else:
                result.append(self.position[i] + axes[letter] * self.unit)
        return tuple(result)

    def apply(self, block: Block) -> bool:
        """The modal words and the offset commands (G10 L2/L20, G92, G92.1) of a checked block;
        True when the active WCO changed (the next report carries WCO)."""
        changed = False
        if block.units is not None:
            self.inches = block.units == 20.0
        if block.feed is not None:
            self.feed = block.feed * self.unit
        if block.distance is not None:
            self.absolute = block.distance == 90.0
        if block.wcs is not None and block.wcs != self.wcs:
            self.wcs, changed = block.wcs, True
        if block.motion is not None:
            self.motion = block.motion
        command, axes = block.non_modal, block.axes
        if command == 10.0:
            index = self.wcs if block.p == 0 else int(block.p or 1) - 1
            values = list(self.coords[index])
            for i, letter in enumerate(LETTERS):
                if letter in axes:
                    value = axes[letter] * self.unit
                    values[i] = value if block.l == 2.0 else self.position[i] - value - self.g92[i]
            self.coords[index] = tuple(values)
            changed = changed or index == self.wcs
        elif command == 92.0:
            base = self.coords[self.wcs]
            self.g92 = tuple(self.position[i] - base[i] - axes[L] * self.unit if L in axes else self.g92[i]
                             for i, L in enumerate(LETTERS))
            changed = True
        elif command == 92.1:
            self.g92, changed = (0.0,) * 5, True
        return changed
