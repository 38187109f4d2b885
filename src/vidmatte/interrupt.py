"""Ctrl-C that cannot get lost.

The CLI's SIGINT handler raises KeyboardInterrupt, but a native extension that polls for signals inside a long
call can swallow that exception (seen with ONNX Runtime under load: the run went on after Ctrl-C). The handler
therefore also sets ``INTERRUPTED``, which the frame loop checks at every frame.
"""

from __future__ import annotations

import signal
import threading

INTERRUPTED = threading.Event()


def install_interrupt_handler() -> None:
    def on_sigint(signum, frame):
        INTERRUPTED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
