"""Several devices and several processes (aevb.parallel): the same training and the same numbers
as on one device. Two CPU devices in this process (conftest), and two real processes joined by
jax.distributed over gloo on 127.0.0.1."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SYNTHETIC, run_cli, tiny, tiny_flags, train_run
from safetensors.numpy import load_file

from aevb import parallel
from aevb.data import splits
from aevb.evaluation import bounds, curves, exact, gaps
from aevb.model import densities, networks
from aevb.runs import checkpoint, files, records
from aevb.training import compiled, loop

NET = networks.get("mlp")
HELPER = str(Path(__file__).with_name("synthetic_aevb.py"))


@pytest.fixture(scope="module")
def split():
    return splits.load(tiny())


@pytest.fixture(scope="module")
def two():
    return parallel.devices(2)


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


def test_two_devices_train_as_one(split, two, tmp_path):
    """The same minibatches, draws and Adam steps, the gradient summed across devices: after 3
    epochs the parameters and every metric agree with one device within float rounding."""
    config = tiny(log_px_every=1)
    one = train_run(config, tmp_path / "one", split, progress=False)
    both = train_run(config, tmp_path / "two", split, progress=False, devices=two)
    for a, b in zip(_leaves(one["params"]), _leaves(both["params"]), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    rows_one, rows_two = records.read_metrics(tmp_path / "one"), records.read_metrics(tmp_path / "two")
    for r1, r2 in zip(rows_one, rows_two, strict=True):
        np.testing.assert_allclose([r2["train_elbo"], r2["test_elbo"], r2["tracked"]["log_px"]],
                                   [r1["train_elbo"], r1["test_elbo"], r1["tracked"]["log_px"]], rtol=1e-5)
    summary = records.read_summary(tmp_path / "two")
    assert summary["trained_on"] == {"platform": "cpu", "kind": "cpu", "count": 2, "processes": 1}


def test_the_epoch_is_split_over_the_devices(split, two):
    """The compiled epoch gives each device half of each batch and all-reduces the gradients: it is
    data parallel, not the whole batch computed twice."""
    config = tiny()
    params, opt_state = two.replicate(compiled.init_state(config))
    epoch = compiled.make_epoch(config, devices=two)
    text = epoch.lower(params, opt_state, two.replicate(jnp.asarray(split.x_train)), 1).compile().as_text()
    assert "all-reduce" in text
    pixels = split.x_train.shape[1]
    assert f"f32[{config.batch_size // 2},{pixels}]" in text
    assert f"f32[{config.batch_size},{pixels}]" not in text
    assert not re.search(r"all-gather|all-to-all", text)


def test_the_noise_of_an_image_does_not_depend_on_the_device_count(two):
    """Image i's z noise inside the compiled step, split over two devices, equals one device's draws
    bit for bit (JAX's threefry is partitionable)."""
    key, x = jax.random.PRNGKey(7), np.random.default_rng(0).uniform(size=(50, 6)).astype(np.float32)
    mean, log_std = jnp.asarray(x[:, :2]), jnp.asarray(x[:, 2:4])

    def draws(devices):
        @jax.jit
        def f(mean, log_std):
            mean, log_std = devices.constrain(mean, 0), devices.constrain(log_std, 0)
            return densities.sample_diag_gaussian(key, mean, log_std, (3,))  # (3, B, 2)

        return f(devices.split(np.asarray(mean)), devices.split(np.asarray(log_std)))

    alone, split_draws = draws(parallel.ONE), draws(two)
    assert len(split_draws.sharding.device_set) == 2
    np.testing.assert_array_equal(np.asarray(split_draws), np.asarray(alone))


def test_sharded_evaluation_gives_the_same_numbers(split, two):
    """ELBO, IWAE (plain and defensive), the bound at K = 200 continuing the IWAE bound's 100 draws
    (the bounds against K) and exact log p(x) with images split over two devices: the same per-image
    numbers as one device, bit for bit; 137 images are a whole chunk of 100 and a short, odd last one (its own
    shape, one device's share padded), and the exact grid's chunk is 137 images padded to 256."""
    params = compiled.init_state(tiny(latent_dim=2))[0]
    params = jax.tree_util.tree_map(lambda leaf: leaf * 1.5, params)
    x = split.x_test[:137]
    pairs = [(bounds.elbo_per_image(NET, params, x, 3, devices=d),
              bounds.iwae_per_image(NET, params, x, 20, devices=d),
              bounds.iwae_per_image(NET, params, x, 20, defensive=True, devices=d),
              gaps.iwae_prefixes_per_image(NET, params, x, (10, 100, 200), devices=d, known=(
                  100, bounds.iwae_per_image(NET, params, x, 100, devices=d)))[:, 2],
              exact.log_px(NET, params["decoder"], x, devices=d)[0]) for d in (parallel.ONE, two)]
    for alone, shared in zip(*pairs, strict=True):
        assert alone.shape == (len(x),)
        np.testing.assert_array_equal(shared, alone)


def test_a_batch_the_devices_do_not_divide_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--runs-dir", str(tmp_path), *tiny_flags(batch_size=25),
                           "--devices", "2", "--no-progress")
    assert code == 2 and "batch size 25 is not a multiple of the 2 devices" in err
    assert list(tmp_path.iterdir()) == []  # no run folder left behind, not even its lock file
    code, _, err = run_cli(capsys, "train", "--runs-dir", str(tmp_path), *tiny_flags(), "--devices", "8",
                           "--no-progress")
    assert code == 2 and "--devices 8 needs 8 devices in each process; process 0 has 2" in err
    assert not (tmp_path / "default" / files.CHECKPOINT).exists()
    code, _, err = run_cli(capsys, "train", "--runs-dir", str(tmp_path), *tiny_flags(), "--coordinator", "nowhere",
                           "--num-processes", "2", "--process-id", "0")
    assert code == 2 and "is not HOST:PORT" in err
    code, _, err = run_cli(capsys, "train", "--runs-dir", str(tmp_path), *tiny_flags(), "--num-processes", "2")
    assert code == 2 and "several processes need all three" in err


def test_aevb_says_which_devices_ran_the_job(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "run", "--runs-dir", str(tmp_path), *tiny_flags(epochs=1, latent_dim=3),
                           "--devices", "2", "--no-progress")
    assert code == 0
    page = (tmp_path / "default" / files.REPORT).read_text()
    assert "Trained on 2 CPU devices; evaluated on 2 CPU devices." in page
    code, out, _ = run_cli(capsys, "data", "--dataset", SYNTHETIC.name)
    assert code == 0 and re.search(r"devices: 2 CPU devices \(JAX [0-9.]+\)", out)


# ---- two processes -------------------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(*args, read_only=None, from_environment=False):
    """aevb ARGS in two processes joined on a free port of 127.0.0.1: [process 0, process 1].
    read_only: a folder process 1 must not write in (it exits 97 if it does: see synthetic_aevb.py).
    from_environment: the process settings in JAX_* variables, as cluster launchers set them, not flags."""
    port = _free_port()
    watch = [{}, {"AEVB_TEST_READ_ONLY": str(read_only)} if read_only else {}]

    def settings(i):
        if from_environment:
            return [], {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
                        "JAX_PROCESS_ID": str(i)}
        return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)], {}

    return [subprocess.Popen([sys.executable, HELPER, *args, *settings(i)[0], "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **watch[i], **settings(i)[1]})
            for i in (0, 1)]


def test_the_write_watch_stops_a_process_that_writes(tmp_path):
    """The audit hook behind read_only ends a process that writes a run, naming the file."""
    done = subprocess.run([sys.executable, HELPER, "train", *tiny_flags(epochs=1), "--runs-dir", str(tmp_path),
                           "--no-progress"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AEVB_TEST_READ_ONLY": str(tmp_path)})
    assert done.returncode == 97 and f"wrote under {tmp_path.resolve()}" in done.stderr


def _wait(processes, timeout=240):
    """Exit codes and outputs of both; whatever happens, neither is left running."""
    deadline, results = time.monotonic() + timeout, []
    try:
        for p in processes:
            out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
            results.append((p.returncode, out, err))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("how, target", [(signal.SIGTERM, 1), (signal.SIGTERM, 0), (signal.SIGKILL, 1)],
                         ids=["sigterm-to-1", "sigterm-to-0", "kill-9-to-1"])
def test_two_processes_stop_together_resume_and_match_one(split, tmp_path, how, target):
    """Two real processes train one run (gloo collectives), and one gets a SIGTERM or a kill -9.
    SIGTERM, to either: both stop after the same epoch and save it (exit 130). kill -9: process 0's next
    collective fails; it saves the last epoch both finished (no regular checkpoint was due) and says
    so in one line (exit 1), at once. Only process 0 has written; resumed by two processes, the run
    ends where an uninterrupted single-process run ends."""
    runs = tmp_path / "runs"
    processes = _two_processes("train", "--runs-dir", str(runs), "--name", "both",
                               *tiny_flags(epochs=40, checkpoint_every=100), read_only=runs)
    metrics = runs / "both" / files.METRICS
    deadline = time.monotonic() + 180
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            break
        time.sleep(0.2)
    processes[target].send_signal(how)
    began = time.monotonic()
    (code0, out0, err0), (code1, out1, err1) = _wait(processes)
    if how == signal.SIGTERM:
        assert (code0, code1) == (130, 130), (err0, err1)
        assert out1 == ""  # process 1 says nothing: process 0 speaks for the job
        assert "SIGTERM" in (err0 if target == 0 else err1)
    else:
        assert (code0, code1) == (1, -9), err0
        assert time.monotonic() - began < 60  # not JAX's minutes-long wait for the lost process
        errors = [line for line in err0.splitlines() if line.startswith("aevb: error:")]
        assert len(errors) == 1 and "another process of the job stopped during training" in errors[0], err0
        assert "Traceback" not in err0
    _, stopped = checkpoint.read_checkpoint_config(runs / "both")
    assert 2 <= stopped < 40 and len(records.read_metrics(runs / "both")) >= stopped
    if how == signal.SIGKILL:
        assert f"the checkpoint of epoch {stopped} in" in err0
    assert sorted(p.name for p in runs.iterdir()) == ["both"]  # and process 1 wrote nothing at all (read_only)

    results = _wait(_two_processes("train", "--runs-dir", str(runs), "--name", "both", "--resume", "--epochs",
                                   str(stopped + 1), read_only=runs))
    assert [code for code, _, _ in results] == [0, 0], results
    alone = train_run(tiny(epochs=stopped + 1, checkpoint_every=100), tmp_path / "alone", split, progress=False)
    stored = load_file(runs / "both" / files.CHECKPOINT)
    for name, value in checkpoint.flatten(alone["params"]).items():
        np.testing.assert_allclose(stored[name], value, rtol=1e-5, atol=1e-6)
    summary = records.read_summary(runs / "both")
    assert summary["trained_on"]["processes"] == 2 and summary["epochs"] == stopped + 1
    assert len(records.read_metrics(runs / "both")) == stopped + 1


def test_a_busy_coordinator_port_is_one_line(tmp_path):
    """Process 0 cannot serve the coordinator on a port another program holds: one line, exit 1,
    nothing written (JAX's coordinator itself would crash the process there)."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([sys.executable, HELPER, "train", "--runs-dir", str(tmp_path), *tiny_flags(),
                                 "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"aevb: error: process 0 cannot serve the coordinator on port "
                                                      f"{port}: another program uses it; choose a free port for "
                                                      "--coordinator")
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_on_two_devices(capsys, tmp_path):
    code, out, err = run_cli(capsys, "sweep", "grid", "--runs-dir", str(tmp_path), *tiny_flags(epochs=1),
                             "--latent-dim", "3,4", "--devices", "2", "--no-progress")
    assert code == 0, err
    for point in ("latent_dim=3", "latent_dim=4"):
        summary = records.read_summary(tmp_path / "grid" / point)
        assert summary["trained_on"]["count"] == summary["evaluated_on"]["count"] == 2


def test_seeds_trained_together_on_two_devices(split, two, tmp_path):
    """--seeds with --devices: the vmapped group epoch split over the devices ends where each seed
    ends alone on one device."""
    configs = [tiny(seed=seed, epochs=2) for seed in (0, 1)]
    together = loop.train_group(configs, [tmp_path / "a", tmp_path / "b"], split,
                                curves.monitor(configs[0], split.x_test, two), [False, False], False, two)
    for config, result in zip(configs, together, strict=True):
        alone = train_run(config, tmp_path / f"alone-{config.seed}", split, progress=False)
        for a, b in zip(_leaves(alone["params"]), _leaves(result["params"]), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_process_0_failing_while_it_decides_stops_both_in_one_line(tmp_path):
    """Process 0 finds the run busy (this test holds its writer lock) while it decides what to train:
    it says so in one line, and process 1, which waits for its decision, stops with the same line
    instead of waiting forever. Both exit 1 and nothing is written."""
    from aevb.runs import lock

    with lock.writing(tmp_path / "busy", "a test holding the run"):
        results = _wait(_two_processes("train", "--runs-dir", str(tmp_path), "--name", "busy", *tiny_flags()),
                        timeout=120)
        assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == [".lock"]  # nothing written
    for code, _, err in results:
        assert code == 1 and "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.startswith("aevb: error:")]
        assert len(lines) == 1 and "a test holding the run" in lines[0], err


@pytest.mark.slow
def test_aevb_run_on_two_processes_from_the_environment(tmp_path, capsys):
    """`aevb run --devices all` on two processes that take their settings from JAX_* variables:
    training and evaluation on both, the figures, completion and report by process 0 alone
    (process 1 is watched: any write ends it). The evaluation's per-image numbers (ELBO, IWAE and
    the defensive IWAE: Dz = 3, where no grid runs) are those of one process evaluating the same
    checkpoint, bit for bit. (The exact log p(x) split over devices: test_sharded_evaluation_...)"""
    runs = tmp_path / "runs"
    flags = tiny_flags(epochs=2, latent_dim=3, n_train=200, n_test=100)
    results = _wait(_two_processes("run", "--runs-dir", str(runs), "--name", "r", "--devices", "all", *flags,
                                   read_only=runs, from_environment=True), timeout=300)
    assert [code for code, _, _ in results] == [0, 0], results
    run_dir = runs / "r"
    summary = records.read_summary(run_dir)
    assert summary["trained_on"]["processes"] == summary["evaluated_on"]["processes"] == 2
    assert summary["trained_on"]["count"] == 2  # --devices all: one CPU device of each process
    assert files.report_path(run_dir).stat().st_size > 10000
    for kind in ("curves", "latent", "samples", "reconstructions"):
        assert files.figure_path(run_dir, kind).stat().st_size > 5000
    alone = tmp_path / "alone"
    shutil.copytree(runs, alone)
    code, _, err = run_cli(capsys, "evaluate", "--no-progress", "--runs-dir", str(alone), "--name", "r")
    assert code == 0, err
    two, one = records.read_per_image(run_dir), records.read_per_image(alone / "r")
    assert sorted(two) == sorted(one) and "test_iwae_defensive" in two
    for key in two:
        np.testing.assert_array_equal(two[key], one[key], err_msg=key)


def test_processes_given_different_settings_are_refused_in_one_line(tmp_path):
    """Process 1 is given another learning rate and a seed: every process refuses the job in one line
    naming both settings, before anything is written (process 0's settings once won silently)."""
    port = _free_port()
    runs = tmp_path / "runs"
    extra = [[], ["--learning-rate", "0.05", "--seed", "7"]]
    processes = [subprocess.Popen([sys.executable, HELPER, "train", "--runs-dir", str(runs), *tiny_flags(),
                                   *extra[i], "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                                   "--process-id", str(i), "--no-progress"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    for code, _, err in _wait(processes, timeout=120):
        lines = [line for line in err.splitlines() if line.startswith("aevb: error:")]
        assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
        assert "process 1 was given other settings than process 0" in lines[0]
        assert "learning_rate 0.05 (process 0: None)" in lines[0] and "seed 7 (process 0: None)" in lines[0]
    assert not runs.exists()
