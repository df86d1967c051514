"""Sweeps, run files, manifests, ``load`` and the ``reproduce`` command, on a tiny sweep."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mplearn.__main__ import main
from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.system import System
from mplearn.issues import scenarios
from mplearn.issues.base import Scenario
from mplearn.lab import experiments as ex
from mplearn.lab import runstore

TINY = {"learning_starts": 100, "batch_size": 16, "buffer_size": 1000, "log_interval": 20,
        "epsilon_decay_updates": 100}
STEPS = 300


def tiny_scenario() -> Scenario:
    """2 variants x 2 seeds; the broken one crashes by design at its first update."""
    return Scenario("batch_to_device", "tiny", "inline", steps=STEPS, seeds=2,
                    overrides={**TINY, "replay_obs_dtype": "float64"})


@pytest.fixture(autouse=True)
def _environment_restored():
    """A LocalCluster made by a test itself writes OMP_NUM_THREADS=1 (and friends) into this
    process's environment; later tests (the single_thread check) must not inherit it."""
    import os

    before = dict(os.environ)
    yield
    for name in set(os.environ) - set(before):
        del os.environ[name]
    os.environ.update(before)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The tiny sweep on a local Dask cluster of 2 single-threaded workers (jobs=2)."""
    root = tmp_path_factory.mktemp("data")
    report = ex.run_scenarios([tiny_scenario()], root, jobs=2, progress=False,
                              command="test")
    return root, report


def test_sweep_runs_each_spec_and_records_the_crash(swept):
    root, report = swept
    assert (report.ran, report.crashed, report.skipped, report.unfinished) == (4, 2, 0, 0)
    manifest = json.loads((root / "batch_to_device" / "manifest.json").read_text())
    rows = {(r["variant"], r["seed"]): r for r in manifest["runs"]}
    assert sorted(rows) == [("broken", 0), ("broken", 1), ("fixed", 0), ("fixed", 1)]
    for seed in (0, 1):
        fixed, broken = rows[("fixed", seed)], rows[("broken", seed)]
        assert fixed["status"] == "ok" and fixed["env_steps"] == STEPS
        assert broken["status"] == "crashed"
        assert "mat1 and mat2 must have the same dtype" in broken["error"]
        assert broken["env_steps"] < STEPS  # its partial curve: it died at its first update
        rec = runstore.read(root / "batch_to_device" / broken["file"])
        assert "learner.py" in rec["traceback"] and rec["episodes"][0][0]


def test_resumption_runs_nothing(swept):
    root, _ = swept
    again = ex.run_scenarios([tiny_scenario()], root, jobs=2, progress=False, command="test")
    assert (again.ran, again.skipped, again.unfinished) == (0, 4, 0)


def test_paired_variants_share_episodes_until_the_switch_acts(swept):
    """Same seed: same env seeds and initial weights, so the episodes before the first update
    (where the broken batch conversion first acts) are identical; other seeds differ."""
    root, _ = swept
    manifest = json.loads((root / "batch_to_device" / "manifest.json").read_text())
    recs = {(r["variant"], r["seed"]): runstore.read(root / "batch_to_device" / r["file"])
            for r in manifest["runs"]}

    def early(rec):
        steps, rets = rec["episodes"][0]
        return [(s, r) for s, r in zip(steps, rets, strict=True) if s <= TINY["learning_starts"]]

    for seed in (0, 1):
        a, b = early(recs[("fixed", seed)]), early(recs[("broken", seed)])
        assert a and a == b
    assert early(recs[("fixed", 0)]) != early(recs[("fixed", 1)])


def test_manifest_provenance(swept):
    root, _ = swept
    m = json.loads((root / "batch_to_device" / "manifest.json").read_text())
    assert m["complete"] and m["title"] == "Device and dtype of the batch"
    assert [v["name"] for v in m["variants"]] == ["fixed", "broken"]
    assert m["variants"][1]["config"]["fixes"]["batch_to_device"] is False
    assert m["variants"][0]["config"]["fixes"] == Fixes().to_dict()
    (pair,) = m["pairs"]
    assert {k: pair[k] for k in ("condition", "fixed", "broken")} == {
        "condition": "", "fixed": "fixed", "broken": "broken"}
    # where each pair ran (a verdict uses only pairs on one machine and torch build)
    assert [row["seed"] for row in pair["seeds"]] == [0, 1]
    assert all(row["one_machine"] and row["fixed"]["torch"] == torch.__version__
               for row in pair["seeds"])
    assert m["declared"]["metric"] == m["metric"]["label"] and "margin" in m["declared"]
    p = m["provenance"]
    assert p["command"] == "test" and p["package_version"] == p["library_versions"]["mplearn"]
    assert {"torch", "numpy", "gymnasium"} <= set(p["library_versions"])
    assert p["machines"][0]["cores"] >= 1 and p["run_dates"][0] <= p["run_dates"][1]
    for r in m["runs"]:
        assert {"variant", "seed", "env_steps", "final_return", "status", "file"} <= set(r)
        assert r["updates"][0] == (STEPS - TINY["learning_starts"] if r["status"] == "ok"
                                   else 0)
    assert (root / "batch_to_device" / "figure.png").stat().st_size > 0


def test_load(swept):
    root, _ = swept
    res = ex.load("batch_to_device", root)
    assert res.variants == ["fixed", "broken"]
    assert res.curves["fixed"].shape == (2, res.grid.size)
    assert np.isfinite(res.curves["fixed"][:, -1]).all()
    assert np.isnan(res.curves["broken"][:, -1]).all()  # crashed: nothing after its end
    assert res.summaries["fixed"].n == 2 and res.status["broken"] == ["crashed"] * 2
    diff = res.differences[""]
    assert diff.n == 2 and np.isclose(diff.mean, np.mean(res.values["fixed"]
                                                         - res.values["broken"]))
    assert 0.0 <= res.improvement[""] <= 1.0
    steps, loss = res.diagnostics["learner.loss"]["fixed"][0]
    assert len(steps) == len(loss) > 0
    assert "fixed - broken" in res.table()
    assert isinstance(res.figure(), Figure)
    with pytest.raises(FileNotFoundError, match="reproduce grad_clip"):
        ex.load("grad_clip", root)


def test_budget_starts_nothing_that_cannot_end(tmp_path):
    specs = ex.scenario_specs(tiny_scenario())["fixed"]
    report = ex.run_sweep(specs, tmp_path, jobs=1, progress=False, budget_s=0.0)
    assert (report.ran, report.unfinished) == (0, 2)
    assert not (tmp_path / ex.RUNS).exists()


def _run_processes() -> int:
    """On a Dask worker: its live child processes, multiprocessing's resource tracker aside."""
    import psutil

    return sum("resource_tracker" not in " ".join(c.cmdline())
               for c in psutil.Process().children(recursive=True) if c.is_running())


def test_sweep_on_an_existing_cluster(tmp_path):
    """--scheduler: daemonic workers are refused before any run; on non-daemonic ones a
    crash is a result, and a run is stopped with its process tree when the sweep stops."""
    import dask
    from distributed import Client, Event, LocalCluster

    specs = ex.scenario_specs(tiny_scenario())["broken"][:1]
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as daemonic, \
            pytest.raises(ValueError, match=r"scheduler: workers .* are daemonic"):
        ex.run_sweep(specs, tmp_path, scheduler=daemonic.scheduler_address, progress=False)
    assert not (tmp_path / ex.RUNS).exists()
    with dask.config.set({"distributed.worker.daemon": False}), \
            LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        report = ex.run_sweep(specs, tmp_path, scheduler=cluster.scheduler_address,
                              progress=False)
        assert (report.ran, report.crashed, report.unfinished) == (1, 1, 0)
        assert all(runstore.path(tmp_path / ex.RUNS, s.key).exists() for s in specs)
        long = ex.RunSpec(Config(**TINY, mode="lockstep", total_env_steps=100_000, device="cpu"))
        with Client(cluster) as client:
            future = client.submit(ex.run_task, long, time.time() + 120, "stop-test", pure=False)
            until = time.monotonic() + 60
            while sum(client.run(_run_processes).values()) < 3 and time.monotonic() < until:
                time.sleep(0.2)  # the run, its actor and its learner
            assert sum(client.run(_run_processes).values()) == 3
            Event("stop-test", client=client).set()  # what an interrupted sweep does
            record, wall = future.result()
            assert record is None and wall < 100
            until = time.monotonic() + 10  # its workers exit as soon as they see it gone
            while sum(client.run(_run_processes).values()) and time.monotonic() < until:
                time.sleep(0.2)
            assert sum(client.run(_run_processes).values()) == 0


def test_runs_are_content_addressed():
    s = tiny_scenario()
    fixed = ex.scenario_specs(s)["fixed"]
    again = ex.scenario_specs(tiny_scenario())["fixed"]
    assert [a.key for a in fixed] == [b.key for b in again]
    assert len({a.key for a in fixed}) == 2  # seeds differ
    other = ex.RunSpec(fixed[0].config.replace(replay_obs_dtype="float32"))
    assert other.key != fixed[0].key


def test_scenario_table_covers_every_learning_issue():
    assert sorted(s.issue for s in scenarios()) == sorted(set(Fixes.names()) - {"single_thread"})
    for s in ex.select():  # every config of the full sweep validates, no process started
        for variant, specs in ex.scenario_specs(s).items():
            assert len(specs) == s.seeds >= 5
            broken = Fixes().without(s.issue)
            assert all(spec.config.fixes == (broken if variant.startswith("broken")
                                             else Fixes()) for spec in specs)
            assert all(spec.config.device == "cpu" for spec in specs)


def test_system_starts_from_source_models():
    config = Config(mode="inline", total_env_steps=200, learning_starts=100, device="cpu")
    source = System(config.replace(seed=7)).start()
    try:
        with torch.no_grad():  # a target unlike the local network and unlike a fresh init
            for p in source.shared_models[0].qnetwork_target.parameters():
                p.add_(1.0)
        system = System(config, source_models=source.shared_models).start()
        try:
            for name in ("qnetwork_local", "qnetwork_target"):
                ours = getattr(system.shared_models[0], name).state_dict()
                theirs = getattr(source.shared_models[0], name).state_dict()
                assert all(torch.equal(ours[k], theirs[k]) for k in ours)
        finally:
            system.stop()
    finally:
        source.stop()
    with pytest.raises(ValueError, match="source_models: need one per agent"):
        System(config, source_models=[])


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "no_such_issue"], "error: name: no scenario for 'no_such_issue'"),
    (["reproduce", "--steps", "0"], "error: steps: must be > 0, got 0"),
    (["reproduce", "--seeds", "-1"], "error: seeds: must be > 0, got -1"),
    (["reproduce", "--jobs", "0"], "error: jobs: must be > 0, got 0"),
    (["reproduce", "target_sync", "--steps", "1000"], "error: learning_starts: must be <"),
])
def test_reproduce_argument_errors(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_fixed_runs_alike_with_a_float64_replay():
    """Why batch_to_device's fixed variant reuses the default runs: the conversion is exact."""
    config = Config(**TINY, mode="inline", total_env_steps=STEPS, device="cpu")
    a = ex.run_one(ex.RunSpec(config))
    b = ex.run_one(ex.RunSpec(config.replace(replay_obs_dtype="float64")))
    assert a["status"] == b["status"] == "ok"
    assert a["episodes"] == b["episodes"] and a["learner"][0]["loss"]
    assert a["learner"][0]["loss"] == b["learner"][0]["loss"]


def test_window_metric_averages_the_curve():
    steps, rets = [50, 150, 250, 350], [10.0, 20.0, 30.0, 40.0]
    window = {"start": 100, "end": 300}
    # points 200 and 300: running means over the episodes so far: 15 and 20
    assert ex.run_values(window, {"episodes": [[steps, rets]]}) == (25.0, 17.5)
    assert np.isnan(ex.run_values({"start": 0, "end": 40}, {"episodes": [[steps, rets]]})[1])


def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    # Dask writes OMP_NUM_THREADS=1 (and friends) into the parent's environment for its
    # workers; left there, every later process would be single-threaded.
    import os

    before = dict(os.environ)
    with ex._client(1, None):
        pass
    assert dict(os.environ) == before


def _store(folder, spec, machine: str, sampled: float | None = 0.0, legacy=False) -> None:
    """A minimal run record of ``spec`` made on ``machine`` (the fields import_pairs reads),
    gzipped, or as the plain JSON of runs written before compression (``legacy``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"machine": {"label": machine}, "versions": {"torch": "2.13.0+cpu"},
           "extras": {}, "learner": [{"unwritten_sampled": [] if sampled is None
                                      else [sampled]}]}
    if legacy:
        (folder / f"{spec.key}.json").write_text(json.dumps(rec))
    else:
        runstore.write(runstore.path(folder, spec.key), rec)


def test_import_pairs_moves_whole_one_machine_pairs_only(tmp_path):
    """Pairs travel whole and from one machine; a usable pair already in data/ is kept; a pair
    whose broken run predates the manipulation record is replaced by one that has it."""
    scenario = next(s for s in scenarios() if s.issue == "write_before_publish").scaled(None, 4)
    specs = ex.scenario_specs(scenario)
    (_, fixed, broken), = scenario.pairs()
    f, b = specs[fixed], specs[broken]
    src, dst = tmp_path / "src" / "runs", tmp_path / "data" / "runs"
    assert scenario.manipulation.measure(
        {"learner": [{"unwritten_sampled": [3.0]}], "extras": {}}) is not None
    _store(src, f[0], "A", legacy=True), _store(src, b[0], "A")  # seed 0: data/ has none
    _store(src, f[1], "A"), _store(src, b[1], "B")  # seed 1: split over two machines
    _store(src, f[2], "A"), _store(src, b[2], "A")  # seed 2: data/ already has one: kept
    _store(dst, f[2], "C"), _store(dst, b[2], "C")
    _store(src, f[3], "A"), _store(src, b[3], "A")  # seed 3: data/'s predates the record
    _store(dst, f[3], "C", legacy=True), _store(dst, b[3], "C", sampled=None)
    counts = ex.import_pairs(tmp_path / "src", tmp_path / "data", [scenario])
    assert counts == {"imported": 2, "kept": 1, "conflict": 0, "absent": 1}
    # Imported runs are written compressed, replacing a legacy file of the same run.
    assert all(p.name.endswith(runstore.SUFFIX) for p in dst.iterdir())
    machine = {p.name[:16]: runstore.read(p)["machine"]["label"] for p in dst.iterdir()}
    assert machine[f[0].key] == machine[b[0].key] == "A"
    assert f[1].key not in machine and b[1].key not in machine
    assert machine[f[2].key] == machine[b[2].key] == "C"
    assert machine[f[3].key] == machine[b[3].key] == "A"


def test_write_before_publish_counts_every_sampled_row_and_bounds_the_rate(tmp_path):
    from mplearn.issues import write_before_publish

    folder = tmp_path / "write_before_publish"
    (folder / "runs").mkdir(parents=True)
    runs = []
    for i, (variant, updates, batch, unwritten) in enumerate([
            ("fixed", 900, 32, 0), ("broken", 1000, 32, 2), ("broken", 500, 64, 0),
            ("broken", 700, 32, None)]):  # the last predates the record: not counted
        record = {"updates": [updates], "spec": {"config": {"batch_size": batch}},
                  "learner": [{"unwritten_sampled": [] if unwritten is None else [unwritten]}]}
        (folder / "runs" / f"{i}.json").write_text(json.dumps(record))
        runs.append({"variant": variant, "seed": i, "file": f"runs/{i}.json", "status": "ok"})
    runs.append({"variant": "broken", "seed": 9, "file": "runs/9.json", "status": "missing"})
    (folder / "manifest.json").write_text(json.dumps({
        "runs": runs, "variants": [{"name": "fixed", "broken": False},
                                   {"name": "broken", "broken": True}]}))
    got = write_before_publish.sampled_rows(
        ex.stored_records("write_before_publish", tmp_path, broken=True))
    assert (got.runs, got.rows, got.unwritten) == (2, 1000 * 32 + 500 * 64, 2)
    none_seen = write_before_publish.SampledRows(1, 10_000, 0)
    assert none_seen.upper_95 == pytest.approx(1 - 0.05 ** (1 / 10_000))  # ~3 / rows
    assert 2 / got.rows < got.upper_95 < 7 / got.rows  # Poisson: 6.3 events at 95% for 2 seen
    assert str(got).startswith("2 unwritten rows among 64,000 rows sampled")


def test_startable_keeps_the_order_and_starves_no_run_that_needs_more_cores():
    from mplearn.lab.experiments import RunSpec, startable

    inline = [RunSpec(Config(mode="inline", seed=i, total_env_steps=5_000)) for i in range(3)]
    two_cores = RunSpec(Config(mode="async", seed=9, total_env_steps=5_000))  # actor + learner
    assert [s.cores() for s in (inline[0], two_cores)] == [1, 2]
    todo = [inline[0], two_cores, inline[1], inline[2]]
    hour = 3600.0
    # An idle 2-core cluster: the first run, then the async one does not fit and, in order,
    # holds back the runs behind it instead of letting them take its cores for good.
    assert startable(todo, 0, 2, False, True, hour) == [inline[0]]
    assert startable(todo[1:], 0, 2, False, True, hour) == [two_cores]
    # Out of order (longest first), later runs may fill the cores.
    assert startable(todo, 0, 2, False, False, hour) == [inline[0], inline[1]]
    # On an idle cluster a run larger than it still starts, alone.
    assert startable([two_cores, inline[0]], 0, 1, False, True, hour) == [two_cores]
    # A run that cannot end in the time left is passed over, in either order; the slowdown
    # seen so far scales every cost.
    long = RunSpec(Config(mode="inline", seed=5, total_env_steps=50_000))
    left = 2 * inline[0].cost_s()
    assert long.cost_s() > left
    assert startable([long, inline[0]], 0, 2, False, True, left) == [inline[0]]
    assert startable([long, inline[0]], 0, 2, False, True, left, slowdown=3.0) == []


def test_runstore_round_trips_reproducibly_and_compresses_legacy_files(tmp_path):
    record = {"status": "ok", "episodes": [[[10, 20], [9.5, 12.25]]], "wall_s": 1.5,
              "learner": [{"loss": [0.125, None]}]}
    a, b = runstore.path(tmp_path / "a", "k"), runstore.path(tmp_path / "b", "k")
    runstore.write(a, record)
    time.sleep(1.1)  # a gzip header time stamp would now differ
    runstore.write(b, record)
    assert runstore.read(a) == record and a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    legacy = tmp_path / "old" / "k2.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps(record))
    assert runstore.find(legacy.parent, "k2") == legacy and runstore.read(legacy) == record
    assert runstore.compress(legacy.parent) == 1
    assert not legacy.exists() and runstore.find(legacy.parent, "k2").name == "k2.json.gz"
    assert runstore.read(runstore.find(legacy.parent, "k2")) == record
    assert runstore.find(legacy.parent, "absent") is None
    (legacy.parent / "k1.json").write_text(json.dumps({"n": 1}))  # legacy, read as it is
    assert list(runstore.records(legacy.parent)) == [{"n": 1}, record]
