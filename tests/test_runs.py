import dataclasses
import re
import json

import pytest
from conftest import tiny

from aevb import errors
from aevb.config import Config
from aevb.errors import ConfigError
from aevb.runs import checkpoint, files, records
from aevb.training import compiled


def _checkpoint(run_dir, config, epoch):
    params, opt_state = compiled.init_state(config)
    checkpoint.save_checkpoint(run_dir, config, params, opt_state, epoch)


def test_resolve_new_resume_auto_overwrite(tmp_path):
    run = tmp_path / "r"
    assert checkpoint.resolve(run, {"dataset": "synthetic", "n_train": 600, "n_test": 200, "seed": 4}, "new") == (
        Config(dataset="synthetic", n_train=600, n_test=200, seed=4), False)
    assert checkpoint.resolve(run, tiny(), "auto") == (tiny(), False)
    with pytest.raises(errors.CheckpointError, match="does not exist"):
        checkpoint.resolve(run, {}, "resume")
    run.mkdir()
    _checkpoint(run, tiny(epochs=5), 3)
    with pytest.raises(errors.CheckpointError, match="already holds a checkpoint; use --resume"):
        checkpoint.resolve(run, tiny(epochs=5), "new")
    # Resuming takes the stored config; only epochs may change, and not below the checkpoint's.
    assert checkpoint.resolve(run, {}, "resume") == (tiny(epochs=5), True)
    assert checkpoint.resolve(run, {"epochs": 9}, "resume") == (tiny(epochs=9), True)
    assert checkpoint.resolve(run, tiny(epochs=5), "auto") == (tiny(epochs=5), True)
    with pytest.raises(errors.CheckpointError, match="already at epoch 3; --epochs 2 would go back"):
        checkpoint.resolve(run, {"epochs": 2}, "resume")
    with pytest.raises(errors.CheckpointError, match="different config: hidden_dim 32 != 8, seed 0 != 2"):
        checkpoint.resolve(run, {"hidden_dim": 8, "seed": 2}, "resume")
    with pytest.raises(errors.CheckpointError, match="latent_dim 2 != 3"):
        checkpoint.resolve(run, tiny(latent_dim=3), "auto")
    with pytest.raises(ConfigError, match="batch size 700 exceeds"):
        checkpoint.resolve(run, {"batch_size": 700}, "resume")
    assert checkpoint.resolve(run, tiny(seed=1), "overwrite") == (tiny(seed=1), False)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "summary.json"
    files.atomic_write_text(path, "old")

    def fails(tmp):  # e.g. matplotlib failing halfway through a figure (a full disk: see test_faults)
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise RuntimeError("failed halfway")

    with pytest.raises(RuntimeError, match="failed halfway"):
        files.atomic_write(path, fails)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind


def test_summary_merges_and_metrics_read_up_to_an_epoch(tmp_path):
    assert records.read_summary(tmp_path) == {} and records.read_metrics(tmp_path) == []
    records.update_summary(tmp_path, {"a": 1, "b": {"x": 2}})
    assert records.update_summary(tmp_path, {"b": 3}) == {"a": 1, "b": 3}
    assert json.loads((tmp_path / files.SUMMARY).read_text()) == {"a": 1, "b": 3}
    records.write_metrics(tmp_path, [{"epoch": 1}, {"epoch": 2}])
    records.append_metrics(tmp_path, {"epoch": 3})
    assert [row["epoch"] for row in records.read_metrics(tmp_path)] == [1, 2, 3]
    assert [row["epoch"] for row in records.read_metrics(tmp_path, 2)] == [1, 2]


def test_clear_removes_every_file_of_the_run_and_nothing_else(tmp_path):
    _checkpoint(tmp_path, tiny(), 1)
    records.write_config(tmp_path, tiny())
    records.update_summary(tmp_path, {"a": 1})
    records.write_metrics(tmp_path, [{"epoch": 1}])
    files.write_report(tmp_path, "<html></html>")
    files.figure_path(tmp_path, "curves").parent.mkdir()
    files.figure_path(tmp_path, "curves").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("mine")
    files.clear(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_config_json_is_every_setting(tmp_path):
    config = dataclasses.replace(tiny(), learning_rate=0.004, objective="elbo-analytic-kl")
    records.write_config(tmp_path, config)
    assert Config.from_json((tmp_path / files.CONFIG).read_text()) == config


def test_a_summarys_values_are_checked_by_their_leafs_own_name_at_any_depth(tmp_path):
    """A text key (records.TEXT_KEYS) holds text wherever it sits, in an object inside a list included; every other
    leaf a number; a wrong one is refused naming its whole path."""
    good = {"gap_decomposition": {"test": {"other_families": [{"posterior": "coupling:4", "approximation_gap": 0.1}],
                                           "ks": [1, 10]}}, "rows": [[1.0, None]], "q_star": "grid"}
    assert records.checked(good, tmp_path / "summary.json") == good
    for bad, where in [({"families": [{"posterior": 3}]}, "families[0].posterior must be text"),
                       ({"families": [{"gap": "x"}]}, "families[0].gap must be a number"),
                       ({"ks": [1, "2"]}, "ks[1] must be a number"), ({"a": {"runs": [4]}}, "a.runs[0] must be text")]:
        with pytest.raises(errors.RecordError, match=re.escape(where)):
            records.checked(bad, tmp_path / "summary.json")
