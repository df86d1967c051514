"""Switches for the learning issues: one boolean field per issue, all True (fixed) by default.

Each field is read at exactly one site in the package, marked ``# FIX(<name>)``, where the
correct code and the broken code stand side by side. ``grep -n "FIX(" mplearn/`` is the index
of bugs; ``tests/test_fixes.py`` keeps it so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Fixes:
    """Which learning issues are fixed. ``Fixes()`` is the correct system."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def all(cls) -> Fixes:
        return cls()

    @classmethod
    def none(cls) -> Fixes:
        return cls(**{name: False for name in cls.names()})

    def without(self, *names: str) -> Fixes:
        """A copy with the named issues broken."""
        unknown = [n for n in names if n not in self.names()]
        if unknown:
            raise ValueError(f"fixes: unknown issue name(s) {unknown}; known: {list(self.names())}")
        return dataclasses.replace(self, **{n: False for n in names})

    def broken(self) -> tuple[str, ...]:
        return tuple(n for n in self.names() if not getattr(self, n))

    def to_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)
