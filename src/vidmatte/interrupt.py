"""Ctrl-C that cannot get lost.

The CLI's SIGINT handler raises KeyboardInterrupt, but a native extension that polls for signals inside a long
call can swallow that exception (seen with ONNX Runtime under load: the run went on after Ctrl-C). The handler
therefore also sets ``INTERRUPTED``, which the frame loop checks at every frame.

Live sources (cameras) have no end: there the first Ctrl-C is the way to stop recording, so it only sets the flag
and the frame loop finishes the outputs; a second Ctrl-C aborts as usual.
"""

from __future__ import annotations

import signal
import threading

INTERRUPTED = threading.Event()


def install_interrupt_handler(graceful: bool = False, notice=None) -> None:
    """graceful: the first Ctrl-C only sets INTERRUPTED (and calls ``notice``); later ones raise."""

    def on_sigint(signum, frame):
        first = not INTERRUPTED.is_set()
        INTERRUPTED.set()
        if graceful and first:
            if notice is not None:
                notice()
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
