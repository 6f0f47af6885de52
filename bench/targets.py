"""A performance target from an issue, and how a measurement stands against it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: float | None  # None: not measured in this run
    limit: float
    unit: str  # appended to numbers: "x", " s", " ms", " µs", ""
    lower_is_better: bool = True
    why: str = ""  # said when the target is missed: what stands in the way

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.lower_is_better else self.value >= self.limit

    @property
    def shortfall(self) -> float | None:
        """How far a missed target is from its limit, as a share of the limit (0 when met)."""
        if self.value is None:
            return None
        over = self.value - self.limit if self.lower_is_better else self.limit - self.value
        return max(0.0, over / self.limit) if self.limit else 0.0

    def shown(self, value: float | None = None) -> str:
        value = self.value if value is None else value
        if value is None:
            return "-"
        digits = 3 if abs(value) < 1 else 2 if abs(value) < 100 else 0
        return f"{value:,.{digits}f}{self.unit}"

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        if self.met:
            return "met"
        return f"MISSED by {self.shortfall * 100:.0f}%" if self.shortfall >= 0.005 else "MISSED by a hair"

    def line(self) -> str:
        return f"  {self.name}: {self.shown()}  {self.verdict}"
