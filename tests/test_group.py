"""Several seeds in one compiled program, sweeps over settings, and the comparison page."""

import json
import re
import shutil

import jax
import numpy as np
import pytest
from conftest import run_cli, tiny, tiny_flags, train_run
from test_report import CHROMIUM_ARGS

from aevb import pipeline
from aevb.data import splits
from aevb.runs import checkpoint, files, records
from aevb.training import compiled
from aevb.views import compare


def _same(a, b):
    """Parameters equal bit for bit: a seed trained in a group takes the very steps it takes alone."""
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def _alone(config, run_dir):
    run_dir.mkdir(parents=True)
    return train_run(config, run_dir, splits.load(config), progress=False)


def test_the_compile_estimate_counts_the_group_program_it_will_compile():
    """The operations a group's epoch is estimated to hold (from one seed's, before any state exists)
    are those of the program lowered for the group, exactly (a group is linear in its seeds), for a network and group not in the fit."""
    config = tiny(hidden="24,24,24")
    estimated, seconds = compiled.compile_estimate(config, 7)
    params, opt_state = compiled.init_state(config)
    group = compiled.make_epoch(config, tuple(range(7)))
    lowered = group.lower(compiled.stack([params] * 7), compiled.stack([opt_state] * 7),
                          np.zeros((config.train_size, splits.load(config).x_train.shape[1]), np.float32), np.ones(7, np.int32), np.ones(7, bool))
    actual = lowered.as_text().count(" = ")
    assert estimated == actual
    a, b, c = compiled.COMPILE_SECONDS
    assert seconds == pytest.approx(a + b * estimated + c * estimated**2)


def test_a_group_whose_compile_would_take_days_is_refused_before_anything_is_written(tmp_path, capsys):
    widths = ",".join(["50"] * 40)
    code, out, err = run_cli(capsys, "train", *tiny_flags(), "--hidden", widths, "--seeds", ",".join(map(str, range(800))),
                             "--runs-dir", str(tmp_path), "--name", "g")
    assert code == 2 and re.fullmatch(r"aevb: error: the epoch of 800 seeds would be one program of about [0-9,]+ "
                                      r"operations, whose compile is estimated at [0-9.]+ days on a 2-core machine: "
                                      r"train fewer seeds together \(several --seeds groups\) or a smaller network",
                                      err.splitlines()[-1]), err
    assert list(tmp_path.iterdir()) == []  # not a folder left


def test_seeds_trained_together_get_the_parameters_they_get_alone(tmp_path):
    results = pipeline.train(tiny(), tmp_path / "group", seeds=(0, 1, 7), progress=False)
    assert [r["run_dir"].name for r in results] == ["seed-0", "seed-1", "seed-7"]
    for result in results:
        alone = _alone(tiny(seed=result["config"].seed), tmp_path / f"alone-{result['config'].seed}")
        assert _same(result["params"], alone["params"])
        assert not _same(result["params"], results[0]["params"]) or result is results[0]  # seeds differ
        rows, alone_rows = records.read_metrics(result["run_dir"]), records.read_metrics(alone["run_dir"])
        assert [r["train_elbo"] for r in rows] == [r["train_elbo"] for r in alone_rows]
    group = json.loads((tmp_path / "group" / files.GROUP).read_text())
    finals = [records.read_summary(r["run_dir"])["train_elbo_last_epoch"] for r in results]
    assert group["seeds"] == [0, 1, 7] and group["values"]["train_elbo_last_epoch"] == finals
    assert group["mean"]["train_elbo_last_epoch"] == pytest.approx(np.mean(finals))
    assert group["std"]["train_elbo_last_epoch"] == pytest.approx(np.std(finals, ddof=1))


def test_a_group_resumes_seeds_that_stand_at_different_epochs(tmp_path):
    _alone(tiny(seed=0, epochs=2), tmp_path / "g" / "seed-0")  # seed 0 is ahead: 2 epochs, seed 1 has none
    results = pipeline.train(tiny(epochs=2), tmp_path / "g", "auto", seeds=(0, 1), progress=False)
    assert [r["trained_now"] for r in results] == [0, 2]
    results = pipeline.train({"epochs": 4}, tmp_path / "g", "resume", seeds=(0, 1), progress=False)
    assert [r["trained_now"] for r in results] == [2, 2]
    for result in results:  # a resumed group ends where an uninterrupted run alone ends
        alone = _alone(tiny(seed=result["config"].seed, epochs=4), tmp_path / f"alone-{result['config'].seed}")
        assert _same(result["params"], alone["params"])
        assert [r["epoch"] for r in records.read_metrics(result["run_dir"])] == [1, 2, 3, 4]


def test_a_seed_that_diverges_stops_while_the_others_finish(tmp_path, capsys):
    """Seed 1's checkpoint is given parameters so large (finite, 1e37 times the trained ones) that its
    next epoch overflows: resumed together, seed 1 stops there and keeps its checkpoint, seed 0 trains
    on to the end and ends where it ends alone; the command then names seed 1 in one line (exit 1)."""
    from aevb.training import trained

    argv = [*tiny_flags(epochs=2), "--seeds", "0,1", "--runs-dir", str(tmp_path), "--name", "g", "--no-progress"]
    assert run_cli(capsys, "train", *argv)[0] == 0
    seed_1 = tmp_path / "g" / "seed-1"
    config, params, opt_state, epoch = trained.restore(seed_1)
    checkpoint.save_checkpoint(seed_1, config, jax.tree_util.tree_map(lambda a: a * 1e37, params), opt_state, epoch)
    code, _, err = run_cli(capsys, "train", *argv, "--epochs", "4", "--resume")
    assert code == 1 and "training diverged at epoch 3" in err and str(seed_1) in err, err
    assert trained.restore(seed_1)[3] == 2 and len(records.read_metrics(seed_1)) == 2
    alone = _alone(tiny(epochs=4), tmp_path / "alone")
    seed_0 = trained.restore(tmp_path / "g" / "seed-0")
    assert seed_0[3] == 4 and _same(seed_0[1], alone["params"])
    assert [row["epoch"] for row in records.read_metrics(tmp_path / "g" / "seed-0")] == [1, 2, 3, 4]


@pytest.mark.parametrize("flags, message", [(["--seeds", "0,0"], "a seed twice"),
                                            (["--seeds", "0,1", "--seed", "2"], "not both"),
                                            (["--seeds", "0,x"], "is not a whole number")])
def test_bad_seeds_are_one_usage_line(tmp_path, capsys, flags, message):
    code, out, err = run_cli(capsys, "train", *tiny_flags(), *flags, "--runs-dir", str(tmp_path), "--no-progress")
    assert code == 2 and message in err
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    flags = [*tiny_flags(epochs=2), "--latent-dim", "2,3", "--seeds", "0,1", "--runs-dir", str(runs), "--no-progress"]
    from aevb import cli

    assert cli.main(["sweep", "sw", *flags]) == 0
    return runs / "sw", flags


def test_sweep_trains_and_evaluates_each_point_as_an_ordinary_run(sweep):
    sweep_dir, _ = sweep
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["latent_dim=2", "latent_dim=3"]
    for dz in (2, 3):
        for seed in (0, 1):
            run_dir = sweep_dir / f"latent_dim={dz}" / f"seed-{seed}"
            config, epoch = checkpoint.read_checkpoint_config(run_dir)
            assert (config.latent_dim, config.seed, epoch) == (dz, seed, 2)
            summary = records.read_summary(run_dir)
            assert summary["evaluated_epoch"] == 2 and ("test_log_px" in summary) == (dz == 2)
            assert summary["test_iwae"] >= summary["test_elbo"] - 3 * summary["test_elbo_se"]
        group = json.loads((sweep_dir / f"latent_dim={dz}" / files.GROUP).read_text())
        assert group["seeds"] == [0, 1] and "test_elbo" in group["mean"]
    assert json.loads((sweep_dir / "sweep.json").read_text())["varied"] == ["latent_dim"]


def test_a_finished_sweep_is_skipped(sweep, capsys):
    sweep_dir, flags = sweep
    stamps = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("*") if p.name in ("summary.json", "params.safetensors")}
    code, out, err = run_cli(capsys, "sweep", "sw", *flags)
    assert code == 0 and out.count("is already trained") == 4
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_compare_page_numbers_and_figures(sweep, capsys):
    sweep_dir, _ = sweep
    code, out, err = run_cli(capsys, "compare", str(sweep_dir))
    assert code == 0, err
    page = (sweep_dir / "compare.html").read_text()
    for name in ("compare_latent_dim", "compare_curves"):
        assert files.figure_path(sweep_dir, name).is_file()
    assert page.count('<img class="figure"') == 2 and "http" not in page.replace("http-equiv", "")
    for dz in (2, 3):  # the settings table: mean ± sd over the two seeds, from the runs' own summaries
        values = [records.read_summary(sweep_dir / f"latent_dim={dz}" / f"seed-{s}")["test_elbo"] for s in (0, 1)]
        assert f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}" in page
    assert len(re.findall(r'<td class="path">', page)) == 4


def test_compare_of_nothing_is_one_line(tmp_path, capsys):
    code, out, err = run_cli(capsys, "compare", str(tmp_path))
    assert code == 2 and "no trained runs" in err


@pytest.mark.browser
@pytest.mark.parametrize("width", [1200, 390])
def test_compare_page_in_a_browser_at_laptop_and_phone_widths(sweep, capsys, width):
    from playwright.sync_api import sync_playwright

    sweep_dir, _ = sweep
    if not (sweep_dir / "compare.html").is_file():
        run_cli(capsys, "compare", str(sweep_dir))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        requests, errors = [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((sweep_dir / "compare.html").resolve().as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        # Each figure is drawn, and sits in a box no wider than the screen (on a phone it scrolls inside it).
        widths = page.evaluate("[...document.images].map(i => [i.naturalWidth, i.getBoundingClientRect().width, "
                               "i.closest('.wrap').getBoundingClientRect().width])")
        assert len(widths) == 2 and all(natural > 0 and shown > 0 and box <= width for natural, shown, box in widths)
        assert not errors and all(url.startswith(("file:", "data:")) for url in requests)
        browser.close()


def test_run_with_seeds_gives_each_seed_its_report_and_the_group_its_summary(tmp_path, capsys):
    reports = pipeline.run_all(tiny(epochs=1, latent_dim=3), tmp_path / "g", progress=False, seeds=(0, 1))
    assert [path.parent.name for path in reports] == ["seed-0", "seed-1"] and all(p.is_file() for p in reports)
    group = json.loads((tmp_path / "g" / files.GROUP).read_text())
    elbos = [records.read_summary(tmp_path / "g" / f"seed-{s}")["test_elbo"] for s in (0, 1)]
    assert group["values"]["test_elbo"] == elbos
    assert "test_elbo" in capsys.readouterr().out


@pytest.mark.slow
def test_a_sweep_over_two_settings_cut_short_resumes(tmp_path):
    """A 2 x 2 sweep (latent dimension and hidden width at once) gets a SIGTERM while its second point
    trains; run again, it skips the first point, resumes the second from its checkpoint and trains
    the rest: every point ends with all its epochs, each trained once."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    helper = str(Path(__file__).with_name("synthetic_aevb.py"))
    command = [sys.executable, helper, "sweep", "two",
               *tiny_flags(epochs=60, checkpoint_every=5, n_train=300, n_test=100), "--latent-dim", "3,4",
               "--hidden-dim", "16,32", "--runs-dir", str(tmp_path), "--no-progress"]
    names = [f"latent_dim={dz}_hidden_dim={h}" for dz in (3, 4) for h in (16, 32)]
    cut = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = tmp_path / "two" / names[1]
    deadline = time.monotonic() + 180
    while len(records.read_metrics(second)) < 2:
        assert cut.poll() is None and time.monotonic() < deadline, cut.communicate()
        time.sleep(0.05)
    cut.send_signal(signal.SIGTERM)
    out, err = cut.communicate(timeout=120)
    assert cut.returncode == 130, err
    assert "the sweep continues with: aevb sweep two" in out, out
    stopped = checkpoint.read_checkpoint_config(second)[1]
    assert 2 <= stopped < 60 and not (tmp_path / "two" / names[2]).exists()
    first_checkpoint = (tmp_path / "two" / names[0] / files.CHECKPOINT).stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "two" / names[0] / files.CHECKPOINT).stat().st_mtime_ns == first_checkpoint  # skipped
    assert json.loads((tmp_path / "two" / "sweep.json").read_text())["varied"] == ["latent_dim", "hidden_dim"]
    for name in names:
        assert [row["epoch"] for row in records.read_metrics(tmp_path / "two" / name)] == list(range(1, 61)), name
        config, epoch = checkpoint.read_checkpoint_config(tmp_path / "two" / name)
        assert epoch == 60 and name == f"latent_dim={config.latent_dim}_hidden_dim={config.hidden_dim}"
        assert records.read_summary(tmp_path / "two" / name)["evaluated_epoch"] == 60


def test_compare_counts_runs_as_they_are(tmp_path, capsys):
    """Runs trained but not evaluated give a page (no figures of test numbers, a note saying why); two
    runs of the same settings and seed are repeats, shown apart and not averaged as 2 seeds; a run
    whose config.json is lost but whose checkpoint holds its config is still counted."""
    runs = tmp_path / "runs"
    for name, dz in (("a", 2), ("b", 3), ("a-again", 2)):
        code, _, err = run_cli(capsys, "train", *tiny_flags(epochs=1, latent_dim=dz), "--runs-dir", str(runs),
                               "--name", name, "--no-progress")
        assert code == 0, err
    (runs / "b" / files.CONFIG).unlink()
    code, out, err = run_cli(capsys, "compare", str(runs), "--out", str(tmp_path / "page"))
    assert code == 0, err
    assert "compared 3 runs in 3 settings" in out
    text = (tmp_path / "page" / "compare.html").read_text()
    assert "No run here has been evaluated" in text and "are repeats, not seeds" in text
    assert "sd over 2 seeds" not in text and not list((tmp_path / "page").rglob("compare_latent_dim*"))
    groups = compare.group_runs(compare.find_runs([runs]))
    assert sorted(len(g.entries) for g in groups) == [1, 1, 1]


def test_a_refused_sweep_keeps_the_record_of_the_first(tmp_path, capsys):
    """sweep.json is written only once every point is checked and free: a second sweep into the same
    folder (busy, or with settings its checkpoints refuse) leaves the first one's record as it was; a
    value given twice and two points that would share a folder are usage lines before anything."""
    import subprocess
    import sys
    from pathlib import Path

    from aevb.runs import lock

    base, where = tiny_flags(epochs=1), ["--runs-dir", str(tmp_path), "--no-progress"]
    argv = [*base, "--latent-dim", "3,4", *where]
    assert run_cli(capsys, "sweep", "s", *argv)[0] == 0
    record = (tmp_path / "s" / "sweep.json").read_bytes()
    helper = str(Path(__file__).with_name("synthetic_aevb.py"))
    with lock.writing(tmp_path / "s" / "latent_dim=4", "a test holding a point"):  # another process's lock
        done = subprocess.run([sys.executable, helper, "sweep", "s", *base, "--latent-dim", "4,5", *where],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "a test holding a point" in done.stderr, done.stderr
    code, _, err = run_cli(capsys, "sweep", "s", *argv, "--hidden-dim", "64")
    assert code != 0, err
    assert (tmp_path / "s" / "sweep.json").read_bytes() == record
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["latent_dim=3", "latent_dim=4", "sweep.json"]
    code, _, err = run_cli(capsys, "sweep", "t", *base, "--latent-dim", "3,3", *where)
    assert code == 2 and "--latent-dim gives a value twice: 3,3" in err
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / "d.npz", images=np.zeros((300, 12, 12), np.uint8))
    both = f"npz:{tmp_path / 'a' / 'd.npz'},npz:{tmp_path / 'b' / 'd.npz'}"
    code, _, err = run_cli(capsys, "sweep", "u", "--dataset", both, "--n-train", "200", "--n-test", "100", *where)
    assert code == 2 and "would share the folder dataset=npz-d" in err
    assert not (tmp_path / "t").exists() and not (tmp_path / "u").exists()


def test_a_seeds_damaged_config_json_does_not_stop_the_group(tmp_path, capsys):
    """A finished seed's config.json is damaged (an active seed's is written again); the group resumes,
    and its group.json reads the seeds from the checkpoints, which hold the configs."""
    argv = [*tiny_flags(epochs=1), "--seeds", "0,1", "--runs-dir", str(tmp_path), "--name", "g", "--no-progress"]
    assert run_cli(capsys, "train", *argv)[0] == 0
    (tmp_path / "g" / "seed-0" / files.CONFIG).write_text("{")
    code, out, err = run_cli(capsys, "train", *argv, "--resume")
    assert code == 0 and "Traceback" not in err and out.count("is already trained") == 2, err
    assert json.loads((tmp_path / "g" / files.GROUP).read_text())["seeds"] == [0, 1]
