"""line_fit with 8 MB of data, more than a pipe holds, so starting the helper blocks until it
has read them; importing this file arranges for SIGTERM to reach the run 50 ms into that
start (tests/test_signals.py)."""

import os
import signal
import threading
import time
from multiprocessing import popen_spawn_posix

import numpy as np
from line_fit import backward, forward, loss

from crosscheck import Model

x = np.linspace(-1.0, 1.0, 1_000_000).reshape(-1, 1)     # (m, 1)
y = 3 * x - 1                                             # (m, 1)
_launch = popen_spawn_posix.Popen._launch


def _signal():
    with open(os.environ["SENT"], "w") as f:
        f.write(repr(time.monotonic()))
    os.kill(os.getpid(), signal.SIGTERM)


def _signalled_launch(self, process_obj):                 # while the start is written
    threading.Timer(0.05, _signal).start()
    return _launch(self, process_obj)


popen_spawn_posix.Popen._launch = _signalled_launch

model = Model(
    name="big_line",
    x=x, y=y,
    init={"w": np.zeros((1, 1)), "b": np.zeros(1)},
    forward=forward, loss=loss, backward=backward,
    lr=0.1, epochs=3,
)
