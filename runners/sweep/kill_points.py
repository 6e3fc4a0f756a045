"""Named moments of a driver's start at which it can be made to SIGKILL itself, to prove that a
kill at any of them leaves a sweep `selab resume` or `selab run --overwrite` accepts.

`SELAB_KILL_AT=<step>` in a driver's environment kills it (SIGKILL: no cleanup, no exit code of
its own, as the OOM killer or a lost node would) when it reaches that step of `selab run`:

- locked: the sweep's lock is taken, nothing checked or created yet;
- folder: the folder is a sweep (spec and start written), no MLflow parent run yet;
- parent: the parent run exists in MLflow, not yet recorded in the folder;
- ray: the parent run is recorded and RUNNING, Ray not started yet.

Unset (always, outside the tests of runners' start) it costs one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

ENV = "SELAB_KILL_AT"
STEPS = ("locked", "folder", "parent", "ray")


def reached(step: str) -> None:
    """SIGKILL this process if SELAB_KILL_AT names `step`."""
    assert step in STEPS, step
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
