"""Ctrl-C and SIGTERM mapped onto a job's control, for as long as the job runs.

The first signal asks the job to end through ``JobControl``: a file job is cancelled (its temporary outputs removed,
exit 130); a live source (camera) is stopped, which is the normal end of a recording, and the outputs are finished.
The frame loop checks the control at every frame, so a signal cannot get lost inside a native call (seen with ONNX
Runtime under load, where a KeyboardInterrupt raised mid-call was swallowed). A second signal raises
KeyboardInterrupt: the hard abort, for when finishing takes too long.
"""

from __future__ import annotations

import contextlib
import signal
import sys

from ..job import JobControl

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_control(control: JobControl, live: bool):
    received = []

    def on_signal(signum, frame):
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt
        if live:
            print("\nvidmatte: stopping the live source, finishing the outputs (Ctrl-C again to abort)",
                  file=sys.stderr, flush=True)
            control.stop_input()
        else:
            control.cancel()

    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    try:
        yield control
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def terminate_as_interrupt() -> None:
    """Outside a job, SIGTERM unwinds like Ctrl-C (temporary files are removed on the way out)."""

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
