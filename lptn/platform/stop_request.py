"""SIGINT / SIGTERM as a request to stop after the current iteration (and save first)."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Dict, Optional

from lptn.platform.logger import get_logger


class StopRequest:
    """SIGINT / SIGTERM -> a flag the loop polls; a second signal raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}
        self._pid = os.getpid()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            # A forked DataLoader worker inherited this handler: the main process decides;
            # it stops the workers itself after saving.
            return
        if self.signum is not None:
            self.restore()
            raise KeyboardInterrupt(f"second signal {signal.Signals(signum).name}")
        self.signum = signum
        get_logger().warning(
            "received %s: finishing the current iteration, then saving a "
            "resumable state (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            get_logger().debug("not in the main thread: SIGINT/SIGTERM are not intercepted")
            return
        self._pid = os.getpid()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
