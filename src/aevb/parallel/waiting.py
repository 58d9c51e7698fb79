"""Waiting for a computation so that Ctrl-C and SIGTERM are handled at once, not when it ends."""

import threading

import jax


def wait(tree):
    """tree once its arrays are computed, waited for so that a signal is handled at once: the main
    thread waits on an event (a lock wait, which a signal interrupts to run its Python handler) while
    a helper thread waits on the arrays (a C call, which would hold the handler until the epoch in
    flight ends)."""
    done = threading.Event()

    def block():
        try:
            jax.block_until_ready(tree)
        except Exception:  # noqa: BLE001 -- the main thread meets the same error when it reads the arrays
            pass
        finally:
            done.set()

    threading.Thread(target=block, daemon=True).start()
    done.wait()
    return tree
