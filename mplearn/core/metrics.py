"""Records from the workers, collected into a ``Result`` that notebooks plot and JSON keeps."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FINAL_EPISODES = 20  # final_return: mean return of the last 20 finished episodes


def library_versions() -> dict[str, str]:
    import gymnasium
    import torch

    import mplearn

    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": np.__version__, "gymnasium": gymnasium.__version__,
            "mplearn": mplearn.__version__, "platform": platform.platform(),
            "cpus": str(os.cpu_count())}


@dataclass
class Result:
    """Everything a run produced. Per-agent lists of records, each record a dict."""

    config: dict
    seed: int
    episodes: list[list[dict]]  # per agent: env_step, time, ret, length
    learner: list[list[dict]]  # per agent: update, env_step, loss, grad_norm, mean_q, ...
    actor: list[list[dict]]  # per agent: env_step, policy_lag, epsilon, version, ...
    wall_s: float = 0.0
    env_steps: int = 0  # per agent
    updates: list[int] = field(default_factory=list)  # per agent
    error: str | None = None
    versions: dict = field(default_factory=library_versions)

    @property
    def fixes(self) -> dict:
        return self.config["fixes"]

    def returns(self, agent_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(env steps, episode returns) of one agent's finished episodes."""
        eps = self.episodes[agent_id]
        return (np.array([e["env_step"] for e in eps], dtype=np.int64),
                np.array([e["ret"] for e in eps], dtype=np.float64))

    def series(self, kind: str, key: str, agent_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(env steps, values) of a learner or actor record field, e.g. ('learner', 'loss')."""
        recs = getattr(self, kind)[agent_id]
        return (np.array([r["env_step"] for r in recs], dtype=np.int64),
                np.array([r[key] for r in recs], dtype=np.float64))

    def final_return(self, agent_id: int = 0, n: int = FINAL_EPISODES) -> float:
        _, rets = self.returns(agent_id)
        return float(rets[-n:].mean()) if len(rets) else float("nan")

    @property
    def summary(self) -> dict:
        n_agents = len(self.episodes)
        last = [recs[-1] if recs else {} for recs in self.learner]
        lags = [r["policy_lag"] for recs in self.actor for r in recs]
        wall = max(self.wall_s, 1e-9)
        return {
            "final_return": [self.final_return(i) for i in range(n_agents)],
            "episodes": [len(e) for e in self.episodes],
            "env_steps": self.env_steps,
            "updates": list(self.updates),
            "wall_s": round(self.wall_s, 3),
            "env_steps_per_s": self.env_steps * n_agents / wall,
            "updates_per_s": sum(self.updates) / wall,
            "policy_lag_mean": float(np.mean(lags)) if lags else 0.0,
            "publishes": [r.get("publishes", 0) for r in last],
            "target_updates": [r.get("target_updates", 0) for r in last],
            "error": self.error,
        }

    def to_dict(self) -> dict:
        return {"config": self.config, "fixes": self.fixes, "seed": self.seed,
                "versions": self.versions, "summary": self.summary, "wall_s": self.wall_s,
                "env_steps": self.env_steps, "updates": self.updates, "error": self.error,
                "episodes": self.episodes, "learner": self.learner, "actor": self.actor}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Result:
        d = json.loads(Path(path).read_text())
        return cls(config=d["config"], seed=d["seed"], episodes=d["episodes"],
                   learner=d["learner"], actor=d["actor"], wall_s=d["wall_s"],
                   env_steps=d["env_steps"], updates=d["updates"], error=d.get("error"),
                   versions=d["versions"])

    def table(self) -> str:
        """A plain-text summary table, one row per agent."""
        s = self.summary
        rows = [f"{'agent':>5} {'final_return':>12} {'episodes':>8} {'updates':>8} "
                f"{'publishes':>9} {'target_upd':>10}"]
        for i in range(len(self.episodes)):
            rows.append(f"{i:>5} {s['final_return'][i]:>12.1f} {s['episodes'][i]:>8} "
                        f"{s['updates'][i]:>8} {s['publishes'][i]:>9} {s['target_updates'][i]:>10}")
        rows.append(f"env steps/agent {s['env_steps']}, wall {s['wall_s']:.1f} s, "
                    f"{s['env_steps_per_s']:.0f} env steps/s, {s['updates_per_s']:.0f} updates/s, "
                    f"policy lag {s['policy_lag_mean']:.2f} updates")
        return "\n".join(rows)


class Collector:
    """Turns worker records into per-agent lists."""

    def __init__(self, n_agents: int, start_time: float):
        self.start_time = start_time
        self.episodes: list[list[dict]] = [[] for _ in range(n_agents)]
        self.learner: list[list[dict]] = [[] for _ in range(n_agents)]
        self.actor: list[list[dict]] = [[] for _ in range(n_agents)]

    def add(self, kind: str, agent_id: int, record: dict) -> None:
        record = dict(record, time=record["time"] - self.start_time)
        {"episode": self.episodes, "learner": self.learner, "actor": self.actor}[kind][
            agent_id].append(record)
