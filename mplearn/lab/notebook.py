"""What the notebooks call: the set-up check, short live experiments, monitored demo runs,
verdicts from ``data/``, and thin widgets over them (the logic is here, so a headless run
works and the same calls serve a script).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import os
import platform
from dataclasses import dataclass

import numpy as np
import torch

from mplearn.core.config import Config
from mplearn.core.fixes import Fixes
from mplearn.core.metrics import library_versions
from mplearn.core.system import System, WorkerError
from mplearn.diagnose.monitor import Monitor
from mplearn.issues import NAMES, all_issues, issue, module, scenario, scenarios
from mplearn.lab import experiments, plots, pool, stats
from mplearn.lab import verdict as verdict_lib

# --- the set-up ---------------------------------------------------------------------------------


def setup_report() -> dict:
    """What this machine gives the kit: versions, cores, start methods, torch threads."""
    return {
        **library_versions(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "default start method": mp.get_start_method(allow_none=True) or
        mp.get_context().get_start_method(),
        "start method mplearn uses": "spawn",
        "torch threads in this process": torch.get_num_threads(),
        "torch threads in each worker": 1,
        "cuda available": torch.cuda.is_available(),
    }


def catalogue_table(root: str = "data") -> str:
    """One line per issue: name, title, notebook, and its verdicts from ``root``
    (``mplearn.lab.verdict``: the label per condition)."""
    rows = [f"{'issue':<22} {'title':<44} {'notebook':<28} verdict"]
    for i in all_issues():
        rows.append(f"{i.name:<22} {i.title:<44} {i.notebook:<28} "
                    f"{verdict_lib.issue_verdicts(i.name, root).summary}")
    return "\n".join(rows)


# --- short live experiments -----------------------------------------------------------------------

@dataclass
class Live:
    """A short paired run of an issue's scenario, fixed and broken."""

    issue: str
    condition: str
    steps: int
    records: dict[str, list[dict]]  # "fixed"/"broken" -> one record per seed

    def finals(self, variant: str) -> np.ndarray:
        """Per seed, the mean return of the last 20 episodes (NaN: no episode finished)."""
        return np.array([experiments.run_values(None, r)[1] for r in self.records[variant]])

    def table(self) -> str:
        """Final returns per seed, rounded to 0.1: exact for a seed in inline and lockstep."""
        lines = [f"{self.issue}{f' ({self.condition})' if self.condition else ''}, "
                 f"{self.steps} env steps, final return per seed:"]
        for v, recs in self.records.items():
            values = ", ".join("nan" if math.isnan(x) else f"{x:.1f}" for x in self.finals(v))
            crashed = [r["error"] for r in recs if r["status"] == "crashed"]
            lines.append(f"  {v:<7} {values}" + (f"  (crashed: {crashed[0]})" if crashed else ""))
        return "\n".join(lines)

    def figure(self, title: str | None = None):
        grid = stats.make_grid(self.steps, 50)
        curves = {v: experiments._agent_mean_curves(recs, grid)
                  for v, recs in self.records.items()}
        summaries = {v: stats.summarize(self.finals(v), statistic="mean")
                     for v in self.records}
        return plots.comparison_figure(
            grid, curves, summaries, title or f"{issue(self.issue).title}: a short live run",
            statistic="mean")


def live(issue_name: str, steps: int = 2_000, seeds: int = 2, condition: str | None = None,
         fixes_on: tuple[bool, ...] = (True, False), mode: str | None = None,
         overrides: dict | None = None, jobs: int | None = None) -> Live:
    """Run the issue's scenario (``condition``: one of its conditions, default the first) at
    ``steps`` env steps for ``seeds`` paired seeds, fixed and broken, side by side: up to
    ``jobs`` runs at once (default: one per core) in ``lab.pool``'s worker processes, or one
    after the other in this process with ``jobs=1``. Either way a seed gives the same record:
    each run seeds everything it draws, on one torch thread.

    ``mode="inline"`` runs each variant in one process, for scenarios stored as lockstep runs
    whose short live version would spend most of a notebook's time budget starting processes.
    Inline and lockstep compute the same thing for a seed, with one exception: the random init
    of a network built in a worker (with ``initial_state`` broken the actor acts with its own
    init, drawn in the parent, seeded, inline; in the actor process, unseeded, in lockstep).
    ``overrides`` (config fields) shorten a run for a "Try it", e.g. an earlier
    ``learning_starts``.
    """
    sc = scenario(issue_name).scaled(steps=steps, seeds=seeds)
    if overrides:  # on the scenario, so that each phase of a restart is built with them
        sc = dataclasses.replace(sc, overrides={**sc.overrides, **overrides})
    pair = next((p for p in sc.pairs() if condition in (None, p[0])), None)
    if pair is None:
        raise ValueError(f"condition: {condition!r} is not one of {[p[0] for p in sc.pairs()]}")
    by_name = {v.name: v for v in sc.variants()}
    specs = {}
    for fixed in fixes_on:
        variant = by_name[pair[1] if fixed else pair[2]]
        arm = experiments.run_specs(sc, variant)
        if mode is not None:
            arm = [dataclasses.replace(s, config=s.config.replace(mode=mode)) for s in arm]
        specs["fixed" if fixed else "broken"] = arm
    done = iter(pool.run_all(experiments.run_one, [s for arm in specs.values() for s in arm],
                             jobs))
    records = {name: [next(done) for _ in arm] for name, arm in specs.items()}
    return Live(issue_name, pair[0], steps, records)


# --- monitored demo runs --------------------------------------------------------------------------

# A short lockstep run in which each switch, when broken, acts (the condition it needs).
DEMO = Config(mode="lockstep", device="cpu", total_env_steps=600, learning_starts=100,
              batch_size=16, hidden_dim=16, embedding_dim=16, buffer_size=1000, log_interval=20,
              learner_path="copy", target_update_period=20, epsilon_decay_updates=200)
# What each switch needs to act in that run: each issue module's DEMO (empty: none).
DEMO_CONDITIONS: dict[str, dict] = {n: getattr(module(n), "DEMO", {}) for n in NAMES}


def demo_config(broken: tuple[str, ...] = (), **overrides) -> Config:
    """The demo run's config with ``broken`` switched off and the conditions they need."""
    extra: dict = {}
    for name in broken:
        extra.update(DEMO_CONDITIONS.get(name, {}))
    return DEMO.replace(fixes=Fixes().without(*broken), **{**extra, **overrides})


def monitored_run(config: Config, every: int = 5) -> Monitor:
    """Run ``config`` to its end under a Monitor; a worker's death is explained, not raised."""
    system = System(config)
    monitor = Monitor(system, every=every)
    try:
        system.run(progress=monitor)
    except WorkerError as e:
        monitor.saw_error(e)
    return monitor


# --- verdicts from data/ --------------------------------------------------------------------------

def verdict(issue_name: str, root: str = "data") -> verdict_lib.Verdicts:
    """The issue's verdicts, one per condition, from ``mplearn.lab.verdict`` (the only source
    of verdict text); prints "not measured yet" when ``root`` has no data for it."""
    return verdict_lib.issue_verdicts(issue_name, root)


def has_data(issue_name: str, root: str = "data") -> bool:
    return any(s.issue == issue_name for s in scenarios()) and os.path.exists(
        os.path.join(root, issue_name, "manifest.json"))


# --- widgets (thin) -------------------------------------------------------------------------------

def _png(fig) -> str:
    """A matplotlib figure as base64 PNG, for a display bundle's ``image/png``."""
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class _TryBase:
    """What every "Try it" widget shares: a run button, an output area, the last figure, and a
    display bundle that carries the widget *and* its last figure as ``image/png``, so a view
    without widget support (GitHub, nbviewer, a notebook opened without a kernel) still shows
    the figure. ``run()`` works without a front end."""

    def _build(self, controls: list, see: str) -> None:
        import ipywidgets as w

        self.button = w.Button(description="run", button_style="primary")
        self.out = w.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([w.HBox([*controls, self.button]),
                              w.HTML(f"<b>What to look for:</b> {see}"), self.out])
        self.see = see
        self.last_figure = None

    def _show(self, fig) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.last_figure = fig
        self.out.clear_output(wait=True)
        with self.out:
            display(fig)
        plt.close(fig)

    def _ipython_display_(self):
        from IPython.display import display

        bundle = self.widget._repr_mimebundle_()
        bundle["text/plain"] = f"{type(self).__name__}: What to look for: {self.see}"
        if self.last_figure is not None:
            bundle["image/png"] = _png(self.last_figure)
        display(bundle, raw=True)


def _live_series(run: Live, key: str) -> dict[str, list[tuple]]:
    """``<actor|learner>.<field>`` of a live run: variant -> per seed (env steps, values)."""
    kind, name = key.split(".", 1)
    return {v: [(np.asarray(r[kind][0]["env_step"]), np.asarray(r[kind][0][name], dtype=float))
                for r in recs if r[kind] and name in r[kind][0]]
            for v, recs in run.records.items()}


def _live_returns(run: Live) -> dict[str, list[tuple]]:
    """Per variant, each seed's episode returns (running mean of 20) at their env steps."""
    return {v: [(np.asarray(r["episodes"][0][0]), stats.running_mean(
        np.asarray(r["episodes"][0][1], dtype=float))) for r in recs if r["episodes"]]
        for v, recs in run.records.items()}


class FixToggle(_TryBase):
    """Fix on and fix off side by side, in seconds: the quantity that shows the mechanism
    (``diagnostic``, a run record field such as ``"actor.epsilon"``) and the short learning
    curves, one seed each, in one figure. The checkbox picks the variant the run button reruns
    (drawn bold, "your run"); the other is kept from its last run at the same length.
    ``overrides`` (config fields) make the short run show the mechanism early (an earlier
    ``learning_starts``, a faster epsilon schedule); ``see`` says in one line what to look for.
    """

    def __init__(self, issue_name: str, diagnostic: str, ylabel: str, see: str,
                 steps: int = 3_000, mode: str | None = "inline", overrides: dict | None = None,
                 condition: str | None = None, logy: bool = False):
        import ipywidgets as w

        self.issue, self.diagnostic, self.ylabel, self.logy = issue_name, diagnostic, ylabel, logy
        self.mode, self.overrides, self.condition = mode, dict(overrides or {}), condition
        self.fix = w.Checkbox(value=False, description=f"fix {issue_name} on")
        self.steps = w.IntSlider(value=steps, min=1_000, max=10_000, step=500,
                                 description="env steps", continuous_update=False)
        self.runs: dict[str, Live] = {}  # "fixed" / "broken" -> its last run
        self._build([self.fix, self.steps], see)

    def _arms(self, fixes_on: tuple[bool, ...], steps: int) -> dict[str, Live]:
        """One run per arm in ``fixes_on``, at once: "fixed"/"broken" -> its Live."""
        run = live(self.issue, steps=steps, seeds=1, condition=self.condition,
                   fixes_on=fixes_on, mode=self.mode, overrides=self.overrides)
        return {v: dataclasses.replace(run, records={v: recs}) for v, recs in run.records.items()}

    def run(self):
        """Rerun the variant the checkbox picks (and, side by side, the other one if it has
        no run of this length yet); draw both. Returns the figure."""
        steps = self.steps.value
        mine = "fixed" if self.fix.value else "broken"
        other = "broken" if self.fix.value else "fixed"
        both = other not in self.runs or self.runs[other].steps != steps
        fixes_on = (self.fix.value, not self.fix.value) if both else (self.fix.value,)
        self.runs.update(self._arms(fixes_on, steps))
        fig = self.figure(mine)
        self._show(fig)
        return fig

    def figure(self, mine: str = "broken"):
        from matplotlib.figure import Figure

        runs = {v: self.runs[v] for v in ("fixed", "broken") if v in self.runs}
        diag = {f"fix {'on' if v == 'fixed' else 'off'}": _live_series(r, self.diagnostic)[v]
                for v, r in runs.items()}
        rets = {f"fix {'on' if v == 'fixed' else 'off'}": _live_returns(r)[v]
                for v, r in runs.items()}
        fig = Figure(figsize=plots.FIGSIZE, layout="constrained")
        left, right = fig.subplots(1, 2)
        for ax, series, ylabel, title, logy in (
                (left, diag, self.ylabel, "the mechanism, live", self.logy),
                (right, rets, plots.RETURN_LABEL, "learning", False)):
            # the standard colours: blue (solid) fix on, vermillion (dashed) fix off
            plots.diagnostic_over_time(ax, {("fixed" if k == "fix on" else "broken"): v
                                            for k, v in series.items()}, ylabel, title=title,
                                       logy=logy)
            mine_label = "fixed" if mine == "fixed" else "broken"
            for line in ax.get_lines():
                if line.get_label().startswith(mine_label):
                    line.set_linewidth(3)
        crashed = [f"fix {'on' if v == 'fixed' else 'off'}: {r.records[v][0]['error']}"
                   for v, r in runs.items() if r.records[v][0]["status"] == "crashed"]
        fig.suptitle(f"{issue(self.issue).title}\nfix on (blue) and off (red, dashed), "
                     f"{self.steps.value:,} env steps; your last run: fix "
                     f"{'on' if mine == 'fixed' else 'off'} (bold)"
                     + "".join(f"\nthe learner crashed, {c[:90]}" for c in crashed))
        return fig


def fix_bars(values: dict[str, float], ylabel: str, title: str, fmt: str = "{:.1%}"):
    """Fix on and fix off as two bars (``values``: "fixed"/"broken" -> a number), each
    labelled with its value: the figure of a "Try it" over a small exact experiment."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    names = [v for v in ("fixed", "broken") if v in values]
    bars = ax.bar([f"fix {'on' if v == 'fixed' else 'off'}" for v in names],
                  [values[v] for v in names], 0.5,
                  color=[plots.VARIANT_COLORS[v] for v in names])
    ax.bar_label(bars, [fmt.format(values[v]) for v in names])
    ax.set(ylabel=ylabel, title=title)
    ax.margins(y=0.15)
    return fig


class TryIt(_TryBase):
    """A "Try it" over an issue's own small experiment, which measures fix on and fix off side
    by side: ``experiment(value)`` returns a figure; the slider sets ``value`` (e.g. the rows a
    writer process appends). ``run()`` works without a front end."""

    def __init__(self, experiment, see: str, value: int, min: int, max: int, step: int,
                 description: str):
        import ipywidgets as w

        self.experiment = experiment
        self.value = w.IntSlider(value=value, min=min, max=max, step=step,
                                 description=description, continuous_update=False,
                                 style={"description_width": "initial"})
        self._build([self.value], see)

    def run(self):
        fig = self.experiment(self.value.value)
        self._show(fig)
        return fig


def _agent_color(i: int) -> str:
    colors = [plots.VARIANT_COLORS[plots.FIXED], *plots.EXTRA_COLORS]
    return colors[i % len(colors)]


def run_figure(result_or_system, title: str = ""):
    """Learning curve (every agent) and policy lag of a run, finished or in progress."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    src = result_or_system
    n = src.config.n_agents if hasattr(src, "config") and not isinstance(src.config, dict) \
        else src.config["n_agents"]
    collector = getattr(src, "_collector", src)
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    for i in range(n):
        eps = collector.episodes[i]
        if eps:
            steps = np.array([e["env_step"] for e in eps])
            rets = stats.running_mean(np.array([e["ret"] for e in eps], dtype=float))
            left.plot(steps, rets, label=f"agent {i}", color=_agent_color(i))
        acts = collector.actor[i]
        if acts:
            right.plot([r["env_step"] for r in acts], [r["policy_lag"] for r in acts],
                       color=_agent_color(i), label=f"agent {i}")
    left.set(xlabel="env steps (per agent)", ylabel="return (mean of last 20 episodes)",
             title=title or "learning curve")
    right.set(xlabel="env steps (per agent)", ylabel="policy lag (learner updates)",
              title="how far behind the acting weights are")
    for ax in (left, right):
        ax.xaxis.set_major_formatter(FuncFormatter(plots.format_steps))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="upper left", fontsize=8)
    return fig


class Dashboard:
    """A checkbox per fix, sliders for a few knobs, a run button, and a learning curve and
    policy-lag plot that update while the system runs. ``run()`` works without a front end."""

    KNOBS = ("total_env_steps", "n_agents", "updates_per_step", "learning_rate")
    see = "the learning curve and policy lag of the last run (untick fixes, press run)"

    def __init__(self, config: Config | None = None, redraw_s: float = 2.0):
        import ipywidgets as w

        self.base = config or Config(total_env_steps=10_000, device="cpu")
        self.redraw_s = redraw_s
        self.fixes = {name: w.Checkbox(value=True, description=name, indent=False,
                                       layout=w.Layout(width="210px"))
                      for name in Fixes.names()}
        self.mode = w.ToggleButtons(options=["inline", "lockstep", "async"],
                                    value=self.base.mode, description="mode")
        self.steps = w.IntSlider(value=self.base.total_env_steps, min=2_000, max=50_000,
                                 step=1_000, description="env steps", continuous_update=False)
        self.agents = w.IntSlider(value=self.base.n_agents, min=1, max=4, description="agents")
        self.ratio = w.FloatLogSlider(value=self.base.updates_per_step, base=10, min=-2, max=0.5,
                                      description="updates/step", continuous_update=False)
        self.lr = w.FloatLogSlider(value=self.base.learning_rate, base=10, min=-4, max=-2,
                                   description="learning rate", continuous_update=False)
        self.button = w.Button(description="run", button_style="primary")
        self.status = w.HTML()
        self.out = w.Output()
        self.button.on_click(lambda _: self.run())
        self.widget = w.VBox([
            w.HTML("<b>fixes</b> (untick to switch a learning issue on)"),
            w.GridBox(list(self.fixes.values()),
                      layout=w.Layout(grid_template_columns="repeat(4, 215px)")),
            self.mode, w.HBox([self.steps, self.agents]), w.HBox([self.ratio, self.lr]),
            w.HBox([self.button, self.status]), self.out])
        self.result = None
        self.monitor: Monitor | None = None
        self.last_figure = None

    def config(self) -> Config:
        broken = [name for name, box in self.fixes.items() if not box.value]
        return self.base.replace(
            mode=self.mode.value, total_env_steps=self.steps.value, n_agents=self.agents.value,
            updates_per_step=float(self.ratio.value), learning_rate=float(self.lr.value),
            fixes=Fixes().without(*broken))

    def _draw(self, src, title: str) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = run_figure(src, title)
        self.last_figure = fig
        self.out.clear_output(wait=True)
        with self.out:
            display(fig)
        plt.close(fig)

    def run(self):
        import time

        config = self.config()  # a bad value fails here, before any process starts
        system = System(config)
        self.monitor = Monitor(system)
        last = [0.0]

        def progress(s: System) -> None:
            self.monitor(s)
            now = time.monotonic()
            if now - last[0] >= self.redraw_s:
                last[0] = now
                self.status.value = f"{s.env_steps:,} / {config.total_env_steps:,} env steps"
                self._draw(s, "running ...")

        try:
            self.result = system.run(progress)
        except WorkerError as e:
            self.monitor.saw_error(e)
            self.status.value = f"a worker died: {e.worker}"
            self.result = system.result()
        broken = [n for n, b in self.fixes.items() if not b.value]
        self._draw(self.result, f"{config.mode}, broken: {', '.join(broken) or 'none'}")
        self.status.value = (f"done: {self.result.env_steps:,} env steps in "
                             f"{self.result.wall_s:.1f} s; monitor: "
                             f"{', '.join(self.monitor.issues) or 'no problems found'}")
        return self.result

    def _ipython_display_(self):
        # the widget, and its last figure as image/png for views without widget support
        _TryBase._ipython_display_(self)

