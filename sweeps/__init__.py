"""W&B sweep files: parse and check them, map them to Ray Tune, build each run's command.

``sweeps.spec`` needs no Ray; ``sweeps.space.to_tune_space`` imports Ray Tune when called.
"""

from sweeps.command import build_command
from sweeps.space import grid, nest, sample, to_tune_space
from sweeps.spec import (
    EarlyTerminate,
    Issue,
    Metric,
    Param,
    SweepError,
    SweepSpec,
    load_sweep,
    parse_sweep,
)
from sweeps.tune_runner import SweepOutcome, run_sweep

__all__ = [
    "SweepSpec", "Param", "Metric", "EarlyTerminate", "Issue", "SweepError",
    "load_sweep", "parse_sweep", "to_tune_space", "sample", "grid", "nest", "build_command",
    "run_sweep", "SweepOutcome",
]
