"""How a job process is asked to stop: SIGINT or SIGTERM, gracefully, then at once."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger(__name__)


@contextmanager
def stoppable() -> Iterator[threading.Event]:
    """First Ctrl-C or SIGTERM: stop after the calls in flight. Second: stop at once.

    SIGTERM is what systemd, Kubernetes and `kill` send: it stops as gracefully as Ctrl-C
    (nothing in doubt, exit 3, `migrate resume` goes on).
    """
    stop = threading.Event()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        logger.warning(
            "%s: stopping after the calls in flight (again to stop at once)",
            name,
            extra={"event": "stop_requested", "signal": name},
        )

    try:
        previous = {
            signum: signal.signal(signum, on_interrupt)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
    except ValueError:  # not the main thread: no handler, Ctrl-C stops at once
        yield stop
        return
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
