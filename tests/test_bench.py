"""bench/readme.py: the README's results block is written from the benchmark's JSON, not by hand."""

import importlib.util
import json
from pathlib import Path

import pytest

from aevb.runs import records

ROOT = Path(__file__).resolve().parents[1]


def _readme_module():
    spec = importlib.util.spec_from_file_location("bench_readme", ROOT / "bench" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_json():
    """What bench.py writes, with made-up measurements (the keys are bench.py's)."""
    return {"machine": {"devices": "[CpuDevice(id=0)]", "jax": "0.0", "cpus": 2},
            "speed": {"seconds_per_epoch": 0.3125, "model_gflop_per_s": 126.0, "peak_matmul_gflop_per_s": 281.0,
                      "fraction_of_peak_matmul": 0.448, "fraction_of_model_shape_matmul": 0.661,
                      "model_shape_matmul_gflop_per_s": 190.0, "ceiling_fraction_of_peak_matmul": 0.49,
                      "ideal_ceiling_fraction_of_peak_matmul": 0.6},
            "iwae": {"k": 1000, "images_times_k_per_s": 163000.0, "peak_rss_gib_after_k5000": 0.7},
            "svi_seconds_per_image": 0.57,
            "seeds_together": {"seeds": 3, "together_seconds_per_epoch": 1.09,
                               "one_after_another_seconds_per_epoch": 0.94, "ratio": 1.16},
            "objective_seconds_per_epoch": {"elbo": 0.47, "iwae_k5": 1.46},
            "quality": {"runs": [{"seed": 0, "test_elbo": -157.85}, {"seed": 1, "test_elbo": -157.99}],
                        "mean_test_elbo": -157.92, "sd_test_elbo": 0.1},
            "make_run": {"seconds": 247.0, "exact_evaluation_seconds": 98.0},
            "exact": {"test_images": 10000, "seconds": 8.0, "gflop": 1054.0, "gflop_per_s": 132.0,
                      "fraction_of_peak_matmul": 0.48, "tracked_epoch_seconds": 0.31},
            "checks": {"SVI under 1 s per image": {"ok": True, "measured": "0.57 s"},
                       "`make run` (after install and data) under 120 s": {"ok": False, "measured": "247 s"}}}


def _pages(readme, tmp_path):
    (tmp_path / "README.md").write_text(f"# title\n\nbefore\n{readme.HEADLINE_BEGIN}\nold\n{readme.HEADLINE_END}\nafter\n")
    (tmp_path / "performance.md").write_text(f"# perf\n\n{readme.BEGIN}\nold, typed by hand\n{readme.END}\nend\n")
    return [tmp_path / name for name in ("README.md", "bench.json", "summary.json", "performance.md")]


def test_the_results_are_written_from_the_benchmark(reported_run, tmp_path):
    """The whole block into the performance page, the headline into the README; once more, the same files."""
    readme = _readme_module()
    summary = records.read_summary(reported_run)
    (tmp_path / "bench.json").write_text(json.dumps(_bench_json()))
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    paths = _pages(readme, tmp_path)
    assert readme.main(*paths) == 0
    text, head = (tmp_path / "performance.md").read_text(), (tmp_path / "README.md").read_text()
    assert "old, typed by hand" not in text and text.startswith("# perf\n\n") and text.endswith("end\n")
    assert f"**{summary['test_elbo']:.2f} ± {summary['test_elbo_se']:.2f}** nats/image" in text
    assert f"**{summary['test_log_px']:.2f} ± {summary['test_log_px_se']:.2f}** nats/image" in text
    assert "| SVI under 1 s per image | 0.57 s | **PASS** |" in text
    assert "| `make run` (after install and data) under 120 s | 247 s | **MISS** |" in text
    assert "45% of this machine's large-matmul peak (281 GFLOP/s)" in text
    assert "\nold\n" not in head and head.startswith("# title\n\nbefore\n") and head.endswith("after\n")
    assert f"| test ELBO, seed 0 | **{summary['test_elbo']:.2f} ± {summary['test_elbo_se']:.2f}** nats/image " \
           "(mean over 2 seeds -157.92) |" in head
    assert f"**{summary['test_log_px']:.2f} ± {summary['test_log_px_se']:.2f}** nats/image" in head
    assert "| targets | 1 of 2 PASS |" in head and "| `make run` after install and data | 247 s |" in head
    assert "0.312 s/epoch, 45% of the machine's matmul peak (281 GFLOP/s)" in head
    assert len(head.splitlines()) < 20  # a few lines, not the whole block
    # Once more gives the same files: the blocks are replaced, not appended.
    assert readme.main(*paths) == 0
    assert (tmp_path / "performance.md").read_text() == text and (tmp_path / "README.md").read_text() == head


def test_pages_without_their_markers_are_left_alone(tmp_path, reported_run):
    readme = _readme_module()
    (tmp_path / "bench.json").write_text(json.dumps(_bench_json()))
    (tmp_path / "summary.json").write_text(json.dumps(records.read_summary(reported_run)))
    paths = _pages(readme, tmp_path)
    before = (tmp_path / "performance.md").read_text()
    (tmp_path / "README.md").write_text("no markers here\n")
    assert readme.main(*paths) == 1
    assert (tmp_path / "README.md").read_text() == "no markers here\n"
    assert (tmp_path / "performance.md").read_text() == before  # nothing rewritten, not even the page that had them


@pytest.mark.parametrize("page, markers", [("README.md", ("HEADLINE_BEGIN", "HEADLINE_END")),
                                           ("docs/performance.md", ("BEGIN", "END"))])
def test_the_projects_pages_have_each_marker_once(page, markers):
    for marker in markers:
        assert (ROOT / page).read_text().count(getattr(_readme_module(), marker)) == 1
