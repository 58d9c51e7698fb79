"""What the autograder's checks share: random parameters and inputs, and the diagnoses of wrong answers
(not written, an error, a framework's distribution, a loop over the batch, a value or shape that differs,
and which typical wrong answer it equals). aevb.course.grading documents the student's functions."""

import builtins
import dis
import signal
import threading
import types

import jax
import jax.numpy as jnp
import numpy as np

from ..model import networks

IMAGE_SHAPE = (28, 28)  # the assignment's images; the checks also try smaller ones
NET = networks.build("mlp", "tanh")
# What the project's rule forbids in a student's function: densities and samplers from a framework, and
# aevb's own (the answers). Found by what the code's names resolve to, however imported (never by its text:
# a comment that mentions scipy.stats is not a use of it).
FORBIDDEN = ("scipy.stats", "jax.scipy.stats", "jax._src.scipy.stats", "distrax", "tensorflow_probability",
             "numpyro", "torch.distributions", "blackjax", "flowjax", "aevb")
RANDOM = ("jax.random", "jax._src.random")  # of which only these: uniform and standard-normal draws, and keys
ALLOWED_RANDOM = {"normal", "uniform", "split", "PRNGKey", "key", "fold_in", "key_data", "wrap_key_data", "clone"}
SECONDS_PER_CHECK = 120  # a student function that loops forever gets a verdict, not a hung grader
RTOL, ATOL = 1e-4, 1e-3  # float32 sums over 784 pixels


class Wrong(AssertionError):
    """A student function disagrees with aevb's; the message says how."""


# Drawn with numpy: a JAX draw compiles its sampler anew for each shape, seconds for all the checks.
def random_params(seed, data_dim=784, latent_dim=2, hidden_dim=16):
    """{"encoder": phi, "decoder": theta} shaped as aevb.model.networks.mlp makes them, with weights
    large enough that every pixel's logit matters: an error anywhere shows.
    hidden_dim: the hidden layer's width."""
    rng = np.random.default_rng(seed)

    def layer(n_in, n_out):
        return {"weight": jnp.asarray(rng.normal(0, 2 / np.sqrt(n_in), (n_in, n_out)), jnp.float32),
                "bias": jnp.asarray(rng.normal(0, 0.1, n_out), jnp.float32)}

    return {"encoder": {"hidden": layer(data_dim, hidden_dim), "out": layer(hidden_dim, 2 * latent_dim)},
            "decoder": {"hidden": layer(latent_dim, hidden_dim), "out": layer(hidden_dim, data_dim)}}


def inputs(seed, batch, latent_dim=2, data_dim=784):
    """z (batch, latent_dim) and binary x (batch, data_dim), the same for the same arguments."""
    rng = np.random.default_rng(1000 + seed)
    z = jnp.asarray(1.5 * rng.normal(size=(batch, latent_dim)), jnp.float32)
    return z, jnp.asarray(rng.uniform(size=(batch, data_dim)) < 0.3, jnp.float32)


# ---- shared diagnoses ---------------------------------------------------------------------------


def call(name, f, *args):
    """f(args...) of the student function called name; raises Wrong where it is not written yet or raises an error
    of its own."""
    try:
        return f(*args)
    except NotImplementedError:
        raise Wrong(f"{name} is not written yet (it raises NotImplementedError)") from None
    except Exception as error:  # the student's own error, named in words
        raise Wrong(f"{name} raised {type(error).__name__}: {error}") from None


def _module_of(value):
    if isinstance(value, types.ModuleType):
        return value.__name__
    module = getattr(value, "__module__", None)
    return module if isinstance(module, str) else type(value).__module__


def _forbidden(value):
    """The forbidden name value is (a framework's or aevb's density, sampler or module), or None."""
    module = (_module_of(value) or "").replace("._src", "")
    if any(module == prefix or module.startswith(prefix + ".") for prefix in FORBIDDEN):
        return module if isinstance(value, types.ModuleType) else f"{module}.{getattr(value, '__name__', '')}"
    if module.startswith(RANDOM) and callable(value) and getattr(value, "__name__", "") not in ALLOWED_RANDOM:
        return f"jax.random.{value.__name__}"
    return None


def _names_used(code, namespace):
    """Each object a code object's names resolve to (globals, closures, attribute chains, imports), nested
    functions included: [(dotted name, object or None)]."""
    found, chain = [], None
    for instruction in dis.get_instructions(code):
        op, name = instruction.opname, instruction.argval
        if op in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLASSDEREF") and isinstance(name, str):
            chain = (name, namespace.get(name, _MISSING))
        elif op in ("LOAD_ATTR", "LOAD_METHOD", "IMPORT_FROM") and chain is not None:
            chain = (f"{chain[0]}.{name}", getattr(chain[1], name, _MISSING))
        elif op == "IMPORT_NAME":
            chain = (name, types.SimpleNamespace(__name__=name, __module__=name))
        else:
            chain = None
        if chain is not None and chain[1] is not _MISSING:
            found.append(chain)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            found += _names_used(constant, namespace)
    return found


_MISSING = object()


def uses_framework(name, f, graded=()):
    """Refuses a function that calls a framework's densities or aevb's, however imported, or a helper of the
    student's that does; the student's other graded functions (graded names) are checked on their own.
    name: the student function's name f. Raises Wrong naming what it uses."""
    seen, todo = set(), [f]
    while todo:
        g = todo.pop()
        code = getattr(g, "__code__", None)
        if code is None or id(g) in seen:
            continue
        seen.add(id(g))
        closure = {var: cell.cell_contents for var, cell in zip(code.co_freevars, g.__closure__ or (), strict=False)
                   if _has_contents(cell)}
        namespace = {**vars(builtins), **getattr(g, "__globals__", {}), **closure}
        used = _names_used(code, namespace)
        hits = [(dotted, what) for dotted, what in ((d, _forbidden(v)) for d, v in used) if what]
        if hits:  # the longest name of a chain: jax.scipy.stats.norm.logpdf, not jax.scipy.stats
            dotted, what = max(hits, key=lambda hit: len(hit[0]))
            raise Wrong(f"{name} uses {dotted}{'' if what == dotted else f' ({what})'}: this assignment writes each "
                        "density from its formula (jax.numpy only; jax.random only "
                        "for uniform and normal draws; not aevb's own functions)")
        for dotted, value in used:
            if (isinstance(value, types.FunctionType) and value.__module__ == f.__module__
                    and dotted.split(".")[0] not in graded):
                todo.append(value)  # a helper of the student's (defined where f is): what it calls counts


def _has_contents(cell):
    try:
        cell.cell_contents
    except ValueError:  # a closure variable not yet assigned
        return False
    return True


def structure(name, f, make_args):
    """Refuses a loop over the batch: it shows as a traced program that grows with the batch size.
    name: the student function's name f; make_args(batch) gives its arguments for a batch of that size.
    Raises Wrong for such a loop, or where f cannot be traced."""
    sizes = []
    for batch in (2, 6):
        try:
            sizes.append(len(jax.make_jaxpr(f)(*make_args(batch)).jaxpr.eqns))
        except NotImplementedError:
            raise Wrong(f"{name} is not written yet (it raises NotImplementedError)") from None
        except Exception as error:
            raise Wrong(f"{name} cannot be traced by JAX ({type(error).__name__}: {str(error).splitlines()[0]}): "
                        "write it with jax.numpy operations on whole arrays, not numpy or Python floats") from None
    if sizes[1] > sizes[0]:
        raise Wrong(f"{name} loops over the batch (its traced program has {sizes[0]} operations for 2 images and "
                    f"{sizes[1]} for 6): write it with array operations on the whole batch at once")


def numbers(name, got, what=""):
    """got as a float64 array, or a verdict saying what the student's function returned instead.
    name: the student function's name, for the verdict. Raises Wrong for None or what is not an array of numbers."""
    if got is None:
        raise Wrong(f"{name} returned None{' for ' + what if what else ''} (is its return statement missing?)")
    try:
        return np.asarray(got, dtype=np.float64)
    except Exception:  # a string, a dict, a ragged list, ...: the student's value, named
        kind = type(got).__name__
        raise Wrong(f"{name} returned a {kind}{' for ' + what if what else ''}, not an array of numbers "
                    "(return a jax.numpy array)") from None


def close(got, want):
    """Whether got (any array-like) has want's shape and values within the checks' tolerances."""
    got = numbers("the function", got)
    return got.shape == np.shape(want) and np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)


class _TookTooLong(BaseException):  # not an Exception: the handlers of the student's errors let it through
    pass


def within_time(name, run, seconds=None):
    """run() with a limit of seconds (where a signal can stop it: the main thread, as in a notebook); a
    student function still running then gets a verdict, and the limit is restored whatever happens.
    name: the student function's name, for the verdict. Raises Wrong past the limit."""
    seconds = SECONDS_PER_CHECK if seconds is None else seconds
    if threading.current_thread() is not threading.main_thread():
        return run()

    def stop(signum, frame):
        raise _TookTooLong

    before = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return run()
    except _TookTooLong:
        raise Wrong(f"{name} did not finish within {seconds:g} s (a loop that never ends?)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def compare(name, got, want, variants, what, otherwise=None):
    """got against want (a numpy array); variants: {message: a wrong answer's value} tried in order; then
    otherwise() (a diagnosis of the check's own, which may raise Wrong), then the shape and the difference.
    name: the student function's name and what: the call's description, for the verdict."""
    want, got = np.asarray(want, dtype=np.float64), numbers(name, got, what)
    if close(got, want):
        return
    shape = np.shape(got)
    for message, value in variants.items():
        if value is not None and close(got, value):
            raise Wrong(f"{name}: {message}")
    if otherwise is not None:
        otherwise()
    if shape != want.shape:
        raise Wrong(f"{name} returned shape {shape} for {what}; expected {want.shape}")
    if not np.all(np.isfinite(np.asarray(got, dtype=np.float64))):
        raise Wrong(f"{name} returns NaN or inf for {what} (a log of a negative number or of 0?)")
    worst = np.max(np.abs(np.asarray(got, dtype=np.float64) - want))
    raise Wrong(f"{name} differs from aevb's by up to {worst:.4g} nats for {what}")


def sum_variants(per_element, sign_of):
    """The wrong answers of a density summed over its last axis: not summed, the sign, the batch summed.
    per_element: the right answer before its sum over the last axis (B, D); sign_of: "pixels" where the sum is of
    binary pixels' log densities (at most 0)."""
    total = per_element.sum(-1)
    return {"it is missing the sum over the last axis (one value per row, summed over its entries)": per_element,
            "it has the wrong sign (a log density of binary pixels is at most 0)" if sign_of == "pixels"
            else "it has the wrong sign": -total,
            "it sums over the batch too: keep one value per row (shape (B,))": total.sum(),
            "it averages over the batch: keep one value per row (shape (B,))": total.mean()}
