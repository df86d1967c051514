"""Reading a stored run record for a manipulation check: the last or largest value of a
recorded column, a per-run extra. A run record is what ``lab.experiments.run_one`` writes:
``learner`` and ``actor`` hold, per agent, columns of records (``env_step`` first); ``extras``
holds per phase, per agent, measurements taken at the end of the phase.
"""

from __future__ import annotations

import math


def column(record: dict, kind: str, field: str, agent: int = 0) -> list[float]:
    """The finite values of ``<kind>.<field>`` (kind: learner | actor) for ``agent``."""
    try:
        values = record[kind][agent][field]
    except (KeyError, IndexError, TypeError):
        return []
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def last(record: dict, kind: str, field: str, agent: int = 0) -> float | None:
    values = column(record, kind, field, agent)
    return values[-1] if values else None


def largest(record: dict, kind: str, field: str) -> float | None:
    """The largest value of ``<kind>.<field>`` over the run and every agent."""
    agents = len(record.get(kind) or [])
    values = [v for a in range(agents) for v in column(record, kind, field, a)]
    return max(values) if values else None


def extra(record: dict, name: str, phase: int = 0, agent: int = 0):
    """Extra ``name`` measured at the end of ``phase`` for ``agent`` (None if absent)."""
    try:
        return record["extras"][name][phase][agent]
    except (KeyError, IndexError, TypeError):
        return None
