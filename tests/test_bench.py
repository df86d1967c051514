"""Benchmarks in tiny configurations: the documented keys, with sane values. No timing
assertions: only that rates are positive and ratios finite."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from mplearn import Config
from mplearn.__main__ import main
from mplearn.bench import BENCHMARKS, build, gpu, notebooks, profile, publish, throughput

pytestmark = pytest.mark.usefixtures("no_leaks")

REPO = Path(__file__).resolve().parents[1]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_throughput_compares_inline_and_async_at_the_same_update_to_data_ratio():
    # A small lag bound keeps even this short async run in its steady state.
    out = throughput.run([1], 800, {"learning_starts": 100, "device": "cpu",
                                    "max_update_lag": 20})
    r = out["agents"]["1"]
    for key in ("speedup", "ideal_speedup", "ratio_to_ideal", "speedup_whole_run"):
        assert positive(r[key]), key
    assert 1.0 <= r["ideal_speedup"] <= 2.0  # (a + b) / max(a, b)
    assert r["ratio_to_ideal"] == pytest.approx(r["speedup"] / r["ideal_speedup"])
    for mode in ("inline", "async"):
        for key in ("env_steps_per_s", "updates_per_s", "wall_s"):
            assert positive(r[mode][key]), (mode, key)
        assert r[mode]["updates_per_env_step"] == pytest.approx(1.0, abs=0.1), mode
    assert positive(r["inline"]["act_ms_per_step"]) and positive(r["inline"]["learn_ms_per_step"])
    assert r["vs_origin"] == pytest.approx([r["speedup"] * 1.4, r["speedup"] * 1.7])
    assert out["machine"]["cpus"] >= 1


def test_solve_reports_steps_and_wall_seconds_per_seed_and_their_median():
    # A target that a few hundred updates reach, and one no CartPole-v1 episode can (max 500).
    out = build("solve", ["--seeds", "0", "--mode", "inline", "--steps", "3000", "--target",
                          "30", "--set", "learning_starts=100"])()
    assert out["solved"] == "1/1"
    run = out["runs"][0]
    assert run["solved"] and 0 < run["env_steps"] <= 3000 and positive(run["wall_s"])
    assert out["median_env_steps"] == run["env_steps"] and out["median_wall_s"] == run["wall_s"]
    assert run["best_last20"] >= 30
    out = build("solve", ["--seeds", "0", "--mode", "inline", "--steps", "600", "--target",
                          "501", "--set", "learning_starts=100"])()
    assert out["solved"] == "0/1" and out["median_env_steps"] is None
    assert out["runs"][0]["env_steps"] is None


def test_publish_and_sync_costs_with_memcpy_baselines():
    out = publish.run([16, 32], min_seconds=0.05)
    small, large = out["sizes"]
    for size in (small, large):
        for op, tensors in (("publish", 16), ("sync", 8)):  # both networks; the online one
            r = size[op]
            assert r["tensors"] == tensors
            assert positive(r["ms"]) and positive(r["mb_per_s"]) and positive(r["bytes"])
            for base in ("torch_per_tensor", "torch_flat", "numpy_flat"):
                assert positive(r["memcpy"][base]["ms"]), base
        assert size["sync"]["bytes"] * 2 == size["publish"]["bytes"]
        assert positive(size["seqlock_bracket_us"]) and positive(size["trainer_state_dict_us"])
    assert large["publish"]["bytes"] > small["publish"]["bytes"]


def test_learner_rate_times_the_real_learner_update_on_the_cpu():
    r = gpu.learner_rate(Config(device="cpu", batch_size=16, num_tau_samples=4), threads=1,
                         min_seconds=0.05, replay_rows=100)
    assert (r["device"], r["threads"], r["path"], r["batch_size"], r["N"]) == (
        "cpu", 1, "in_place", 16, 4)
    assert positive(r["updates_per_s"])
    assert r["ms_per_update"] == pytest.approx(1e3 / r["updates_per_s"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_gpu_benchmark_without_cuda_is_a_one_line_error(capsys):
    assert main(["bench", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: device:") and "\n" not in err


def _notebook(path: Path, source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)


def test_notebooks_benchmark_times_each_notebook_and_reports_failures(tmp_path):
    assert notebooks.run(tmp_path)["notebooks"] == []  # none yet: an empty list
    _notebook(tmp_path / "a_ok.ipynb", "x = 1 + 1\nx")
    _notebook(tmp_path / "b_fails.ipynb", "raise ValueError('broken')")
    out = notebooks.run(tmp_path)
    assert [r["notebook"] for r in out["notebooks"]] == ["a_ok.ipynb", "b_fails.ipynb"]
    assert [r["passed"] for r in out["notebooks"]] == [True, False]
    assert all(positive(r["wall_s"]) for r in out["notebooks"])
    assert out["passed"] == "1/2"


@pytest.mark.parametrize("argv, names", [
    (["bench", "nope"], "name: no benchmark 'nope'"),
    (["bench", "throughput", "--agents", "0"], "n_agents"),
    (["bench", "throughput", "--set", "no_such_field=1"], "no_such_field"),
    (["bench", "publish", "--min-seconds", "0"], "min_seconds"),
    (["bench", "notebooks", "--dir", "/no/such/dir"], "dir"),
])
def test_bench_cli_bad_input_is_one_line_and_exit_2(argv, names, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and names in err and "\n" not in err
    assert captured.out == ""


def test_every_benchmark_has_a_script_that_prints_one_json_object(subprocess_env):
    # benchmarks/profile.py would shadow the standard library's profile module (torch imports
    # cProfile) when a script runs from benchmarks/: its script is profile_update.py.
    scripts = {"profile": "profile_update"}
    assert {p.stem for p in (REPO / "benchmarks").glob("*.py")} >= {
        scripts.get(name, name) for name in BENCHMARKS}
    proc = subprocess.run(
        [sys.executable, "benchmarks/publish.py", "--hidden", "16", "--min-seconds", "0.02"],
        cwd=REPO, env=subprocess_env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["benchmark"] == "publish"


def test_peers_names_the_requirements_file_when_sb3_is_missing(monkeypatch):
    import importlib.util

    from mplearn.bench import peers
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"^peers: .*benchmarks/requirements\.txt$"):
        peers.build(["--systems", "sb3-qrdqn"])
    peers.build(["--systems", "mplearn-inline"])  # mplearn alone needs no SB3


def test_peers_runs_sb3_and_mplearn_interleaved_into_a_file_and_resumes_from_it(tmp_path):
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("sb3_contrib")
    out_file = tmp_path / "peers.jsonl"
    # Target 1: every CartPole episode returns >= 1, so a run solves at its 20th episode.
    # mplearn-async starts its actor and learner inside a pool worker: that must work.
    argv = ["--seeds", "0", "--steps", "1500", "--target", "1", "--jobs", "2", "--label", "t",
            "--systems", "sb3-qrdqn", "mplearn-inline", "mplearn-async", "--out", str(out_file)]
    out = build("peers", argv)()
    names = ["sb3-qrdqn", "mplearn-inline", "mplearn-async"]
    assert [r["system"] for r in out["runs"]] == names
    assert out["failed"] == [] and out["missing"] == [] and out["runs_now"] == 3
    for run in out["runs"]:
        assert run["solved"] and 0 < run["env_steps_to_solve"] <= 1500, run
        assert 0 < run["wall_s_to_solve"] <= run["wall_s"]
        assert run["episodes"] >= 20 and run["last20_at_end"] >= 8  # CartPole's shortest is 8
        assert run["wall_s_per_50k"] == pytest.approx(run["wall_s"] * 50_000 / 1500, rel=0.01)
        assert run["updates"] > 0 and run["torch_threads"] == 1 and run["label"] == "t"
        assert positive(run["cpu_s"])  # every process of the run, children included
        assert run["load_avg_1m_at_start"] >= 0 and run["load_avg_1m_at_end"] >= 0
    for name in names:
        row = out["table"][name]
        assert row["solved"] == "1/1" and positive(row["median_wall_s_per_50k"])
        assert positive(row["median_cpu_s_per_50k"])
    assert out["machine"]["cpus"] >= 1 and out["sb3_hyperparameters"]["train_freq"] == 256
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert sorted(r["system"] for r in lines) == sorted(names)
    assert all(len(r["curve"]) == r["episodes"] for r in lines)  # every episode kept
    # Run again: everything is in the file already, so nothing runs and the table is the same.
    again = build("peers", argv)()
    assert again["runs_now"] == 0 and again["runs_from_file"] == 3
    assert again["table"] == out["table"] and len(out_file.read_text().splitlines()) == 3


def test_peers_resumes_past_a_line_cut_short_and_reads_only_matching_runs(tmp_path, monkeypatch):
    from mplearn.bench import peers

    def record(system, seed, steps=50_000, target=475.0, solved_at=None):
        return {"system": system, "seed": seed, "steps": steps, "target": target,
                "solved": solved_at is not None, "env_steps_to_solve": solved_at,
                "wall_s_to_solve": solved_at and solved_at / 500, "last20_at_end": 480.0,
                "wall_s": 100.0, "wall_s_per_50k": 100.0 * 50_000 / steps}

    out_file = tmp_path / "peers.jsonl"
    peers.append_run(out_file, record("sb3-qrdqn", 11, solved_at=40_000))
    peers.append_run(out_file, record("mplearn-inline", 11, steps=3000))  # other steps: not used
    with out_file.open("a") as f:
        f.write('{"system": "mplearn-inline", "seed"')  # a kill in the middle of a write
    ran = []
    monkeypatch.setattr(peers, "run_one", lambda name, seed, *rest: ran.append((name, seed))
                        or record(name, seed, solved_at=30_000))
    monkeypatch.setattr(peers, "ProcessPoolExecutor", _InlinePool)
    monkeypatch.setattr(peers, "check_requirements", lambda systems: None)  # no SB3 needed
    out = peers.build(["--systems", "sb3-qrdqn", "mplearn-inline", "--seeds", "11", "12",
                       "--out", str(out_file)])()
    # Seed 12 starts with the next system in turn; the run already in the file is skipped.
    assert ran == [("mplearn-inline", 11), ("mplearn-inline", 12), ("sb3-qrdqn", 12)]
    assert out["runs_from_file"] == 1 and out["runs_now"] == 3 and out["missing"] == []
    assert len(peers.read_runs(out_file)) == 5  # the cut line is skipped, the new ones whole
    assert out["table"]["sb3-qrdqn"]["median_wall_s_to_solve"] == 70.0  # median of 80 and 60 s
    assert out["table"]["mplearn-inline"]["median_wall_s_to_solve"] == 60.0
    assert out["goal"]["mplearn-inline"] == {"solved_enough": False,  # 2 seeds, not 4
                                             "wall_s_to_solve_le_qrdqn": True, "met": False}
    summary = peers.build(["--systems", "sb3-qrdqn", "mplearn-inline", "--seeds", "11", "12",
                           "--out", str(out_file), "--summary-only"])()
    assert summary["table"] == out["table"] and summary["runs_now"] == 0


def test_peers_solved_at_is_the_first_episode_whose_last_20_mean_reaches_the_target():
    from mplearn.bench.peers import solved_at

    episodes = [(10 * (i + 1), float(i), 100.0) for i in range(25)]
    assert solved_at(episodes, 100.0) == (200, 19.0)  # the 20th episode completes the window
    assert solved_at(episodes, 101.0) is None
    assert solved_at(episodes[:19], 1.0) is None  # fewer than 20 episodes never solve
    episodes[22] = (230, 22.0, 200.0)  # one long episode lifts episodes 3..22's mean to 105
    assert solved_at(episodes, 105.0) == (230, 22.0)


def test_peers_summary_only_needs_a_results_file():
    with pytest.raises(ValueError, match=r"^--summary-only: needs --out"):
        build("peers", ["--summary-only"])


class _InlinePool:
    """A stand-in for ProcessPoolExecutor that runs each job at submit, in this process."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        from concurrent.futures import Future
        future = Future()
        future.set_result(fn(*args))
        return future


def test_profile_floor_replays_every_matrix_product_of_one_update():
    out = build("profile", ["--warmup", "300", "--calls", "10", "--repeats", "1",
                            "--top", "60"])()
    floor = out["floor"]
    # The floor's GEMMs are the ones the profiled update makes: its addmm and mm calls.
    gemm_calls = sum(o["calls"] for o in out["update"]["top"] if o["op"] in profile.GEMMS)
    assert floor["gemms"] == round(gemm_calls) > 0
    for key in ("sample_and_convert_ms", "loss_forward_ms", "step_no_clip_ms", "step_ms",
                "gemm_ms"):
        assert positive(floor[key]), key
    assert "matrix products alone" in profile.table(out)
