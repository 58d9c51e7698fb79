"""Ctrl-C and SIGTERM during training: the first saves after the epoch in flight, the second stops at once."""

import signal
import sys
import threading


class StopRequest:
    """Ctrl-C or SIGTERM (what schedulers and kill send) sets a flag: the loop saves after the epoch
    in flight and exits cleanly. A second one stops at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.compiling = False  # set by the loop while the epoch program compiles: nothing to save then
        self.active = threading.current_thread() is threading.main_thread()  # signals reach the main thread only

    def __enter__(self):
        if self.active:
            self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:  # the second one: the user insists
            raise KeyboardInterrupt
        self.requested = True
        if self.compiling:
            print(f"\naevb: {signal.Signals(signum).name}: stopping before the first epoch (it was compiling)",
                  file=sys.stderr, flush=True)
            return
        print(f"\naevb: {signal.Signals(signum).name}: saving after the epoch in flight, then stopping "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.active:
            for number, handler in self.previous.items():
                signal.signal(number, handler)


