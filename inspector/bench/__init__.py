"""`inspector bench`: measure the station and write BENCHMARKS.md with PNG plots.

A command, not a test: timings depend on the machine and its load, so they are reported (with
the machine, the commit, the load average and the command), never asserted. The parts:

- `cycle`   — cycle time per part on the virtual cell, split by stage, against motion + exposure;
- `latency` — detector / classifier latency and throughput per execution provider;
- `soak`    — many parts at the highest speed factor: memory, threads, open files, store writes;
- `quality` — held-out escape / line overkill from `inspector eval` (the station's own cycle on
              the virtual cell), and two-stage vs coarse-only at the same escape count;
- `frames`  — cameras that record rendered frames and replay them, so timed runs do not pay for
              the renderer; `machine` — what the figures were measured on; `report` / `plots` —
              BENCHMARKS.md and the figures.
"""
from .run import BenchOptions, rerender, run_bench

__all__ = ["BenchOptions", "rerender", "run_bench"]
