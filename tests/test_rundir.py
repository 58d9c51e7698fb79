import dataclasses
import json

import pytest
from conftest import tiny

from aevb import rundir, train
from aevb.config import Config, ConfigError


def _checkpoint(run_dir, config, epoch):
    params, opt_state = train.init_state(config)
    rundir.save_checkpoint(run_dir, config, params, opt_state, epoch)


def test_resolve_new_resume_auto_overwrite(tmp_path):
    run = tmp_path / "r"
    assert rundir.resolve(run, {"dataset": "synthetic", "n_train": 600, "n_test": 200, "seed": 4}, "new") == (
        Config(dataset="synthetic", n_train=600, n_test=200, seed=4), False)
    assert rundir.resolve(run, tiny(), "auto") == (tiny(), False)
    with pytest.raises(rundir.CheckpointError, match="does not exist"):
        rundir.resolve(run, {}, "resume")
    run.mkdir()
    _checkpoint(run, tiny(epochs=5), 3)
    with pytest.raises(rundir.CheckpointError, match="already holds a checkpoint; use --resume"):
        rundir.resolve(run, tiny(epochs=5), "new")
    # Resuming takes the stored config; only epochs may change, and not below the checkpoint's.
    assert rundir.resolve(run, {}, "resume") == (tiny(epochs=5), True)
    assert rundir.resolve(run, {"epochs": 9}, "resume") == (tiny(epochs=9), True)
    assert rundir.resolve(run, tiny(epochs=5), "auto") == (tiny(epochs=5), True)
    with pytest.raises(rundir.CheckpointError, match="already at epoch 3; --epochs 2 would go back"):
        rundir.resolve(run, {"epochs": 2}, "resume")
    with pytest.raises(rundir.CheckpointError, match="different config: hidden_dim 32 != 8, seed 0 != 2"):
        rundir.resolve(run, {"hidden_dim": 8, "seed": 2}, "resume")
    with pytest.raises(rundir.CheckpointError, match="latent_dim 2 != 3"):
        rundir.resolve(run, tiny(latent_dim=3), "auto")
    with pytest.raises(ConfigError, match="batch size 700 exceeds"):
        rundir.resolve(run, {"batch_size": 700}, "resume")
    assert rundir.resolve(run, tiny(seed=1), "overwrite") == (tiny(seed=1), False)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "summary.json"
    rundir.atomic_write_text(path, "old")

    def fails(tmp):  # e.g. matplotlib failing halfway through a figure (a full disk: see test_faults)
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise RuntimeError("failed halfway")

    with pytest.raises(RuntimeError, match="failed halfway"):
        rundir.atomic_write(path, fails)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind


def test_summary_merges_and_metrics_read_up_to_an_epoch(tmp_path):
    assert rundir.read_summary(tmp_path) == {} and rundir.read_metrics(tmp_path) == []
    rundir.update_summary(tmp_path, {"a": 1, "b": {"x": 2}})
    assert rundir.update_summary(tmp_path, {"b": 3}) == {"a": 1, "b": 3}
    assert json.loads((tmp_path / rundir.SUMMARY).read_text()) == {"a": 1, "b": 3}
    rundir.write_metrics(tmp_path, [{"epoch": 1}, {"epoch": 2}])
    rundir.append_metrics(tmp_path, {"epoch": 3})
    assert [row["epoch"] for row in rundir.read_metrics(tmp_path)] == [1, 2, 3]
    assert [row["epoch"] for row in rundir.read_metrics(tmp_path, 2)] == [1, 2]


def test_clear_removes_every_file_of_the_run_and_nothing_else(tmp_path):
    _checkpoint(tmp_path, tiny(), 1)
    rundir.write_config(tmp_path, tiny())
    rundir.update_summary(tmp_path, {"a": 1})
    rundir.write_metrics(tmp_path, [{"epoch": 1}])
    rundir.write_report(tmp_path, "<html></html>")
    rundir.figure_path(tmp_path, "curves").parent.mkdir()
    rundir.figure_path(tmp_path, "curves").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("mine")
    rundir.clear(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_config_json_is_every_setting(tmp_path):
    config = dataclasses.replace(tiny(), learning_rate=0.004, objective="elbo-analytic-kl")
    rundir.write_config(tmp_path, config)
    assert Config.from_json((tmp_path / rundir.CONFIG).read_text()) == config
