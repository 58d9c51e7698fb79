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


def compile_heard(jitted, args, stopping):
    """jitted compiled for args (its executable then in jax's cache, so the next call with arguments
    of these shapes runs it) in a helper thread, the main thread waiting where a signal reaches it.

    Compiling is one C call that can take minutes (hundreds of seeds' steps in one program), during
    which a Python signal handler would not run. stopping() is asked every 0.1 s; returns True when
    the program compiled, False as soon as stopping() is true (the compile goes on in its daemon
    thread, unused). Compile errors are raised here.
    """
    done, failure = threading.Event(), []

    def build():
        try:
            jitted.lower(*args).compile()
        except BaseException as error:  # noqa: BLE001 -- given to the main thread, which raises it
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=build, daemon=True).start()
    while not done.wait(0.1):
        if stopping():
            return False
    if failure:
        raise failure[0]
    return True
