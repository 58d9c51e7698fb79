"""The rules behind the probes of issues 44 and 49, each tested on inputs the reports did not name: every flag of
every verb reaches its command; a result is described whatever parts it has and saved before it is printed; a
run's identity is its resolved directory; a label keeps its width; values read back are checked where they are
read; every setting is parsed and bounded by one mechanism; nothing is written over that was not made to be."""

import argparse
import dataclasses
import json
import os
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import SYNTHETIC, run_cli, tiny, tiny_flags

from aevb import cli, pipeline
from aevb.arguments import build_parser
from aevb.config import Config
from aevb.config_file import read_file
from aevb.course import release
from aevb.data.npz import LABEL_DTYPE, MAX_CLASSES
from aevb.errors import ConfigError, RecordError
from aevb.evaluation import likelihood
from aevb.protocols import reproduce
from aevb.runs import checkpoint, files, records
from aevb.views import drawing, explorer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "r"
    pipeline.train(tiny(epochs=2), path, progress=False)
    return path


# ---- every documented flag of every verb ---------------------------------------------------------------------


def _value(action, tmp_path):
    """A valid value for a flag, from its name and type."""
    if action.choices:
        return list(action.choices)[0]
    name = action.dest
    if name == "config":
        path = tmp_path / "settings.json"
        path.write_text(json.dumps({"epochs": 2}))
        return str(path)
    text = {"seeds": "0,1", "pairs": "0,1", "devices": "1", "dataset": SYNTHETIC.name, "hidden": "8,4",
            "data_dir": str(tmp_path), "runs_dir": str(tmp_path), "out": str(tmp_path / "out"), "name": "r",
            "learning_rate": "0.01", "adam_eps": "1e-8", "mask": "top"}
    return text.get(name, "1")


class _Pipeline(types.SimpleNamespace):
    """aevb.pipeline with every verb recorded, not run."""

    def __getattr__(self, name):
        def verb(*args, **kwargs):
            self.calls.append(name)
            if name == "train":
                done = {"status": "done"}
                return [done, done] if args[5] is not None else done
            return [] if name == "sweep" else "done"

        return verb


SKIP = {"help", "coordinator", "num_processes", "process_id"}  # several processes: tests/test_parallel.py


def test_every_documented_flag_of_every_verb_reaches_its_command(tmp_path, monkeypatch):
    """Each optional flag of each subcommand, given alone with a valid value, parses and reaches the verb
    without an AttributeError or any other traceback (reproduce --seeds once did not)."""
    monkeypatch.setattr(reproduce, "reproduce", lambda *a, **k: "page")
    monkeypatch.setattr(reproduce, "describe", lambda *a, **k: "described")
    monkeypatch.setattr(release, "release", lambda *a, **k: 0)
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    tried = 0
    for verb, sub in commands.items():
        positional = {"sweep": ["s"], "reproduce": ["burda2016"], "release": ["nb.ipynb"], "compare": [str(tmp_path)],
                      "plot": []}.get(verb, [])
        for action in sub._actions:
            if not action.option_strings or action.dest in SKIP:
                continue
            flag = action.option_strings[-1]
            argv = [verb, *positional, flag]
            if action.nargs != 0:
                argv.append(_value(action, tmp_path))
            if verb == "evaluate":  # the flags that set a part of the evaluation come with the flag asking for it
                argv += {"quick": ["--exact"], "bdmc": ["--ais"]}.get(action.dest, ["--ais"] * action.dest.startswith(
                    "ais_"))
            fake = _Pipeline(calls=[])
            args = parser.parse_args(argv)
            code = cli._call(args, fake, argv)
            assert code in (0, None), argv
            tried += 1
    assert tried > 100


# ---- a result described whatever parts it has, saved before it is printed ----------------------------------


def test_ais_without_bdmc_is_saved_and_described(run_dir, capsys):
    """--bdmc 0 (the help's 'none'): the AIS numbers reach summary.json and per_image.npz and are described; so is
    a result with any one of its optional parts left out."""
    ais = {"steps": 5, "chains": 2, "leapfrog": 1, "images": 3, "bdmc": 0}
    pipeline.evaluate(run_dir, progress=False, ais=ais)
    summary, per_image = records.read_summary(run_dir), records.read_per_image(run_dir)
    assert np.isfinite(summary["test_log_px_ais"]) and per_image["test_ais"].shape == (3,)
    assert "bdmc" not in summary["ais"] and "bdmc_gap" not in summary
    assert "test log p(x) by AIS" in capsys.readouterr().out
    full = {**summary["ais"], "bdmc": {"examples": 4, "forward": -1.0, "reverse": -0.5, "gap": 0.5, "gap_se": 0.1},
            "gap_decomposition": {"images": 3, "approximation_gap": 1.0, "approximation_gap_se": 0.1,
                                  "amortization_gap": 2.0, "amortization_gap_se": 0.2}}
    for part in ("bdmc", "gap_decomposition", "minus_exact"):
        text = likelihood.describe({k: v for k, v in full.items() if not k.startswith(part)})
        assert "test log p(x) by AIS" in text


def test_a_figure_older_than_its_inputs_is_drawn_again_by_the_report(run_dir):
    """After the evaluation changes (per_image.npz newer than the figure), aevb report draws the figures drawn from
    it again and leaves the others; after training moves the checkpoint, every drawn figure is drawn again."""
    pipeline.figures(run_dir, ["gaps", "samples", "curves"])
    before = {k: files.figure_path(run_dir, k).stat().st_mtime_ns for k in ("gaps", "samples", "curves")}
    assert drawing.stale(run_dir) == []
    os.utime(run_dir / files.PER_IMAGE, ns=(before["gaps"] + 10**9,) * 2)
    assert drawing.stale(run_dir) == ["gaps"]
    pipeline.report(run_dir)
    after = {k: files.figure_path(run_dir, k).stat().st_mtime_ns for k in before}
    assert after["gaps"] > before["gaps"] and after["samples"] == before["samples"]
    os.utime(run_dir / files.CHECKPOINT, ns=(max(after.values()) + 10**9,) * 2)
    assert drawing.stale(run_dir) == ["samples", "curves", "gaps"]


# ---- identity, widths, values read back -----------------------------------------------------------------------


def test_a_run_is_its_resolved_directory(run_dir, tmp_path, capsys):
    """One run given under three spellings (relative with .., a symlink, absolute) is one run on the page."""
    link = tmp_path / "link"
    link.symlink_to(run_dir)
    dotted = run_dir.parent / ".." / run_dir.parent.name / run_dir.name
    code, out, err = run_cli(capsys, "compare", str(link), str(dotted), str(run_dir.resolve()), "--out",
                             str(tmp_path / "page"))
    assert code == 0, err
    assert "compared 1 runs in 1 settings" in out
    assert files.identity(link) == files.identity(dotted) == files.identity(run_dir)


@pytest.mark.parametrize("largest", [255, 299, 700, MAX_CLASSES - 1])
def test_labels_keep_their_width_in_the_explorer(largest):
    """Every label up to the largest allowed comes back from the explorer's payload as it went in."""
    labels = np.arange(largest + 1)
    theta = {"hidden": {"weight": np.zeros((2, 3)), "bias": np.zeros(3)}, "out": {"weight": np.zeros((3, 4)),
                                                                              "bias": np.zeros(4)}}
    data = explorer.payload(theta, np.zeros((len(labels), 2)), labels, (2, 2), [str(i) for i in labels])
    import base64

    back = np.frombuffer(base64.b64decode(data["labels"]), LABEL_DTYPE)
    np.testing.assert_array_equal(back, labels)
    assert "Uint16Array" in explorer.EXPLORER_JS.read_text() and LABEL_DTYPE.itemsize == 2


@pytest.mark.parametrize("key, value", [("train_elbo", "high"), ("iwae_k", "<b>5</b>"), ("completion", {"top": {
    "index": "<img src=x onerror=alert(1)>"}}), ("run_stages", {"evaluate": [1, "x"]}), ("units", 5),
    ("trained_on", {"kind": "x" * 2000})])
def test_values_read_back_are_checked_where_they_are_read(run_dir, tmp_path, capsys, key, value):
    """A summary.json value of the wrong kind is one line naming the file and the key, for report and compare."""
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(run_dir, copy)
    summary = records.read_summary(copy)
    (copy / files.SUMMARY).write_text(json.dumps({**summary, key: value}))
    with pytest.raises(RecordError, match=key):
        records.read_summary(copy)
    for argv in (["report", "--runs-dir", str(tmp_path), "--name", "copy"], ["compare", str(copy)]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 1 and "summary.json is damaged" in err and key in err and len(err.strip().splitlines()) == 1


def test_text_read_back_is_escaped_in_the_report(run_dir, tmp_path):
    """A text value of summary.json (the device's kind) holding markup reaches the page escaped."""
    import shutil

    copy = tmp_path / "x"
    shutil.copytree(run_dir, copy)
    records.update_summary(copy, {"trained_on": {"count": 1, "kind": "<img src=x onerror=alert(7)>", "platform":
                                                 "<script>alert(8)</script>", "processes": 1}})
    page = files.report_path(copy).read_text() if pipeline.report(copy) else ""
    assert "<img src=x" not in page and "<script>alert(8)" not in page and "&lt;img src=x" in page


# ---- every setting parsed and bounded by one mechanism ----------------------------------------------------------


@pytest.mark.parametrize("content, words", [
    (b'{"epochs": ' + b"9" * 5000 + b"}", "refuses"), (b'{"hidden": "\xc2\xb2"}', "hidden must be widths"),
    (b'{"hidden": "\xd9\xa3"}', "hidden must be widths"), (b"\x89PNG\r\n\x1a\n\x00\x00", "not text"),
    (b'{"settings": {}, "seeds": 5}', "non-empty list"), (b'{"settings": {}, "seeds": []}', "non-empty list"),
    (b'{"settings": {}, "seeds": [1, 1]}', "twice"), (b'{"settings": {}, "seeds": [-3]}', "whole number"),
    (b'{"settings": {}, "seeds": ["0"]}', "whole number"), (b'{"learning_rate": 1' + b"0" * 400 + b"}", "finite"),
    (b'{"n_train": ' + b"9" * 30 + b"}", "at most"), (b'{"hidden": "' + b"8," * 100 + b'8"}', "layers"),
    (b'{"dataset": "' + b"y" * 100000 + b'"}', "characters"), (b"[" * 100000, "refuses"),
    (b'{"settings": {}, "vary": []}', "non-empty list")])
def test_a_malformed_settings_file_is_one_line(tmp_path, capsys, content, words):
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "train", "--config", str(path), "--runs-dir", str(tmp_path), "--name", "r")
    last = err.strip().splitlines()[-1]
    assert code == 2 and words in last and "error:" in last, err  # the usage, then one line
    assert len(last) < 1000  # a huge value is not echoed whole
    assert not (tmp_path / "r").exists()


def test_unreadable_settings_files_are_one_line(tmp_path):
    for path in ("/dev/zero", str(tmp_path / "missing.json"), "nul\0byte.json", str(tmp_path)):
        with pytest.raises(ConfigError):
            read_file(path)


@pytest.mark.parametrize("flags, words", [(["--hidden", "²"], "hidden must be widths"), (["--epochs", "٣"], "not a whole"),
                                          (["--seeds", "0,0"], "twice"), (["--seeds", "1,x"], "not a whole"),
                                          (["--seed", "9" * 5000], "not a whole"), (["--hidden", "8," * 64 + "8"],
                                                                                      "layers")])
def test_the_same_values_as_flags_are_one_line(tmp_path, capsys, flags, words):
    code, _, err = run_cli(capsys, "train", *flags, "--runs-dir", str(tmp_path), "--name", "r")
    last = err.strip().splitlines()[-1]
    assert code == 2 and words in last and len(last) < 1000, err


def test_a_sweep_states_its_size_refuses_absurd_grids_and_duplicates_after_parsing(tmp_path, capsys):
    flags = ["--runs-dir", str(tmp_path), "--no-progress"]
    big = ",".join(str(i) for i in range(1, 1001))
    code, _, err = run_cli(capsys, "sweep", "s", "--epochs", big, "--latent-dim", big, *flags)
    assert code == 2 and "1000000 points" in err
    for name, values in (("learning_rate", [1, 1.0]), ("hidden", ["20,20", "20, 20"]), ("adam_eps", [1e-8, 0.00000001]),
                         ("n_train", [300, 300.0])):
        grid = {"settings": {k: v for k, v in dataclasses.asdict(tiny()).items() if k in ("dataset", "n_train", "n_test")},
                "vary": {name: values}}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(grid))
        code, _, err = run_cli(capsys, "sweep", "d", "--config", str(path), *flags)
        assert code == 2 and ("same settings" in err or "twice" in err or "whole number" in err), (name, err)
    assert not (tmp_path / "d").exists()


def test_reproduce_lists_and_dry_runs_without_training(tmp_path, capsys, monkeypatch):
    code, out, _ = run_cli(capsys, "reproduce", "--list")
    assert code == 0 and "burda2016" in out and "kingma2013-figure2" in out
    text = reproduce.describe("kingma2013-figure2", "short", measure=False)
    assert "point latent_dim=200: 10 epochs of 60000 images" in text and "differs from the paper" in text
    assert "published" in text and not (tmp_path / "reproduce-kingma2013-figure2-short").exists()
    monkeypatch.setattr(reproduce, "seconds_per_epoch", lambda config: 36.0)  # 13 epochs: 468 s = 0.13 h a point
    text = reproduce.describe("burda2016", "short")
    assert text.count("about 0.13 h of training here") == 3 and "in all about 0.39 h" in text
    assert "VAE, k = 1: -86.76" in text


# ---- nothing written over that was not made to be --------------------------------------------------------------


NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "assignment.ipynb"


def test_release_never_writes_over_the_solution_or_a_file_it_did_not_make(tmp_path, capsys):
    folder = tmp_path / "nb"
    folder.mkdir()
    source = folder / "self.ipynb"
    source.write_bytes(NOTEBOOK.read_bytes())
    (tmp_path / "alias").symlink_to(folder)
    for out in (source, folder / ".." / "nb" / "self.ipynb", tmp_path / "alias" / "self.ipynb"):
        code, _, err = run_cli(capsys, "release", str(source), "--out", str(out))
        assert code == 2 and "solution notebook itself" in err
    assert source.read_bytes() == NOTEBOOK.read_bytes()
    other = tmp_path / "notes.ipynb"
    other.write_text("my own notes")
    code, _, err = run_cli(capsys, "release", str(source), "--out", str(other))
    assert code == 2 and "not a student copy" in err and other.read_text() == "my own notes"
    student = tmp_path / "student.ipynb"
    for _ in range(2):  # a student copy made here may be made again
        assert run_cli(capsys, "release", str(source), "--out", str(student))[0] == 0
    assert run_cli(capsys, "release", str(source), "--out", str(other), "--replace")[0] == 0


@pytest.mark.parametrize("content", [b"\x00\xff\xfe binary", b'{"cells": [1, 2]}', b'{"cells": [{"source": {"a": 1}}]}',
                                     b'{"cells": [{"source": 7}]}', b'{"cells": [{"source": [1, "x"]}]}'])
def test_release_of_what_is_not_a_notebook_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    code, _, err = run_cli(capsys, "release", str(path), "--out", str(tmp_path / "out.ipynb"))
    assert code == 2 and len(err.strip().splitlines()) == 2, err


def _header_changed(path, change):
    from safetensors import safe_open
    from safetensors.numpy import save

    with safe_open(str(path), "np") as stored:
        metadata, tensors = stored.metadata(), {k: stored.get_tensor(k) for k in stored.keys()}
    path.write_bytes(save(tensors, metadata=change(dict(metadata))))


@pytest.mark.parametrize("change", [
    lambda m: {**m, "config": m["config"].replace('"learning_rate": 0.001', '"learning_rate": 0.009')},
    lambda m: {**m, "epoch": "9"},
    lambda m: {**m, "config": m["config"].replace('"eval_samples": 2', '"eval_samples": 3')},
    lambda m: {**{k: v for k, v in m.items() if k != "sha256"}, "sha257": m["sha256"]},
    lambda m: {**{k: v for k, v in m.items() if k != "epoch"}}])
def test_the_digest_covers_the_checkpoints_header(run_dir, tmp_path, capsys, change):
    """A changed setting or epoch in the header, or a missing digest, is refused by resume and evaluate in one
    line, and config.json is not rewritten."""
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(run_dir, copy)
    config_json = (copy / files.CONFIG).read_text()
    _header_changed(copy / files.CHECKPOINT, change)
    for argv in (["train", "--resume", "--epochs", "3", "--no-progress"], ["evaluate", "--no-progress"]):
        code, _, err = run_cli(capsys, *argv, "--runs-dir", str(tmp_path), "--name", "c")
        assert code in (1, 2) and "damaged" in err and "Traceback" not in err, err
    assert (copy / files.CONFIG).read_text() == config_json
    with pytest.raises(Exception, match="damaged"):
        checkpoint.read_checkpoint_config(copy)


def test_a_second_damage_keeps_the_first_copy(run_dir, tmp_path):
    import shutil

    from aevb.runs import lock

    copy = tmp_path / "d"
    shutil.copytree(run_dir, copy)
    for n in (1, 2):
        (copy / files.SUMMARY).write_text(f"damage {n}")
        with lock.writing(copy, "test"):
            pass
    assert (copy / "summary.json.damaged").read_text() == "damage 1"
    assert (copy / "summary.json.damaged.2").read_text() == "damage 2"


def test_user_text_in_figures_is_plain_text(tmp_path):
    """A $ in any text of a figure (a title, a legend, a label) is drawn as it is, not parsed as mathematics."""
    from aevb.views import plots

    figure = plots.latent_figure(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ["m$\\foo$", "a $ b"], "it$em")
    figure.axes[0].set_title("npz:m$\\frac{$.npz")
    path = files.save_figure(tmp_path, "latent", figure)
    assert path.is_file() and path.stat().st_size > 1000
    assert plots.plain("a$b$") == "a$b$"


def test_a_log_axis_keeps_its_powers_of_ten_and_user_ticks_stay_plain(tmp_path):
    """The figures' plain text stops at the tick labels matplotlib's log formatter writes as $10^{k}$ (drawn plain they
    showed as their source, "$\\mathdefault{10^{1}}$"); ticks a user names (a setting's values) stay plain."""
    from matplotlib.figure import Figure

    figure = Figure()
    log_ax, named_ax = figure.subplots(1, 2)
    log_ax.semilogx([1, 10, 1000], [1, 2, 3])
    log_ax.set_title("npz:m$\\frac{$.npz")
    named_ax.plot([0, 1], [0, 1])
    named_ax.set_xticks([0, 1], ["npz:a$b$.npz", "c$"])
    files.save_figure(tmp_path, "ticks", figure)
    powers = [t for t in log_ax.xaxis.get_ticklabels() if "mathdefault" in t.get_text()]
    assert powers and all(t.get_parse_math() for t in powers)
    assert not any(t.get_parse_math() for t in named_ax.xaxis.get_ticklabels()) and not log_ax.title.get_parse_math()


def test_a_file_of_settings_gives_its_seeds_to_train(tmp_path, capsys):
    path = tmp_path / "group.json"
    path.write_text(json.dumps({"settings": {"epochs": 1}, "seeds": [3, 4]}))
    code, _, err = run_cli(capsys, "train", *tiny_flags(epochs=1), "--config", str(path), "--runs-dir", str(tmp_path),
                           "--name", "g", "--no-progress")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "g").iterdir() if p.is_dir()} == {"seed-3", "seed-4"}
    assert Config.from_json((tmp_path / "g" / "seed-3" / files.CONFIG).read_text()).seed == 3


# ---- work proportional to what was asked; nothing silently ignored ------------------------------------------


@pytest.mark.parametrize("flags, words", [
    (["--ais-steps", "5"], "--ais-steps set AIS: add --ais"),
    (["--bdmc", "0", "--ais-chains", "3"], "--ais-chains, --bdmc set AIS: add --ais"),
    (["--exact", "--ais-leapfrog", "2"], "--ais-leapfrog set AIS: add --ais"),
    (["--quick"], "--quick leaves parts of --exact out: add --exact"),
    (["--ais", "--quick"], "--quick leaves parts of --exact out: add --exact"),
])
def test_settings_that_would_be_ignored_are_refused(tmp_path, capsys, flags, words):
    code, _, err = run_cli(capsys, "evaluate", *flags, "--runs-dir", str(tmp_path), "--name", "none")
    assert code == 2 and err.splitlines()[-1] == f"aevb: error: {words}", err


def test_a_quick_run_leaves_out_the_extras_and_a_later_full_run_adds_them(tmp_path, capsys):
    """aevb run --quick: the exact log p(x) without the accuracy check, the bounds against K and the gap
    decomposition, and a report that says so; the run then counts as evaluated for a quick run only, so a
    later aevb run without --quick evaluates again (tests/test_cli.py's end-to-end run shows what it adds)."""
    argv = [*tiny_flags(epochs=1, n_train=200, n_test=100), "--runs-dir", str(tmp_path), "--name", "q", "--no-progress"]
    assert run_cli(capsys, "run", *argv, "--quick")[0] == 0
    quick = records.read_summary(tmp_path / "q")
    assert "test_log_px" in quick and "gap_decomposition" not in quick and "bounds_vs_k" not in quick
    assert "log_px_accuracy" not in quick and "A quick evaluation" in (tmp_path / "q" / "report.html").read_text()
    assert records.evaluated(tmp_path / "q", 1, exact=True, ais=False, extras=False)
    assert not records.evaluated(tmp_path / "q", 1, exact=True, ais=False, extras=True)
    calls = []
    original = pipeline.evaluate
    try:  # a run without --quick evaluates again, asking for the extras (recorded, not run)
        pipeline.evaluate = lambda *args, **kwargs: calls.append(kwargs)
        pipeline.train_and_evaluate(tiny(epochs=1, n_train=200, n_test=100), tmp_path / "q", progress=False)
    finally:
        pipeline.evaluate = original
    assert len(calls) == 1 and calls[0]["exact"] and calls[0]["exact_extras"]


def test_an_interrupted_train_and_evaluate_returns_the_run_as_far_as_it_got(tmp_path, monkeypatch):
    """As if Ctrl-C came in the first epoch: the Run of epoch 1, interrupted, not evaluated; the same call
    then continues it to its last epoch and evaluates it."""
    from aevb.training import signals

    config = tiny(epochs=2, n_train=200, n_test=100)
    with monkeypatch.context() as patch:
        # Asked for from the first epoch on: after the program compiled (a request while it compiles stops
        # before any epoch, tests/test_faults.py).
        patch.setattr(signals.StopRequest, "requested", property(lambda self: not getattr(self, "compiling", False),
                                                                 lambda self, value: None), raising=False)
        stopped = pipeline.train_and_evaluate(config, tmp_path / "r", progress=False, quick=True)
    assert stopped.interrupted and stopped.epoch == 1 and stopped.path == tmp_path / "r"
    assert "test_elbo" not in records.read_summary(tmp_path / "r")
    done = pipeline.train_and_evaluate(config, tmp_path / "r", progress=False, quick=True)
    assert not done.interrupted and done.epoch == 2 and "test_log_px" in records.read_summary(tmp_path / "r")


@pytest.mark.parametrize("flags, words", [
    (["--bdmc", "100000000"], "BDMC's simulated examples would need about"),
    (["--ais-chains", "10000000"], "one AIS call would need about"),
])
def test_ais_settings_too_big_for_memory_are_refused_before_any_work(run_dir, capsys, flags, words):
    before = records.read_summary(run_dir)
    code, _, err = run_cli(capsys, "evaluate", "--ais", "--ais-images", "5", *flags, "--no-progress", "--runs-dir",
                           str(run_dir.parent), "--name", run_dir.name)
    assert code == 1 and words in err.splitlines()[-1] and "this machine has" in err, err
    assert records.read_summary(run_dir) == before  # nothing evaluated, nothing written


def test_the_exact_grids_flop_count_is_xlas_for_any_decoder():
    """The formula for a one-hidden-layer MLP agrees with XLA's count of the compiled decoder within 5%, and
    a conv decoder (no formula) is counted by XLA: several times an MLP of its size per point."""
    import jax

    from aevb.evaluation import exact
    from aevb.model import networks

    for architecture, config in (("mlp", tiny(hidden_dim=64)), ("conv", tiny(architecture="conv"))):
        net = networks.get(architecture) if architecture == "mlp" else config.network
        theta = net.init(jax.random.PRNGKey(0), 144, config)["decoder"]
        counted = exact._decoder_flops(net, theta, 144)
        compiled = jax.jit(net.decode).lower(theta, jax.numpy.zeros((1, 2))).compile().cost_analysis()
        xla = float((compiled[0] if isinstance(compiled, list | tuple) else compiled)["flops"])
        assert counted == pytest.approx(xla, rel=0.05), (architecture, counted, xla)
    assert counted > 10 * 2 * (2 * 64 + 64 * 144)
