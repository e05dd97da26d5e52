"""What a scenario reports: one figure, its ratio to a reference, and whether the target is met."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Result(BaseModel):
    """One measured figure.

    `ratio` compares `value` with `reference` (a baseline measured in the same run, or the
    ideal the protocol allows), so that a noisy machine shifts both sides alike.
    """

    model_config = ConfigDict(extra="forbid")

    scenario: str
    name: str
    value: float
    unit: str
    ratio: float | None = None
    reference: str | None = None
    """What `ratio` divides by, e.g. `bare SDK loop at the same concurrency`."""
    target: str | None = None
    met: bool | None = None
    """None when the figure is informative only."""
    detail: dict[str, Any] = Field(default_factory=dict)

    def line(self) -> str:
        """One human-readable line: figure, ratio, target and verdict."""
        figure = f"{_number(self.value)} {self.unit}"
        ratio = f"  ratio {self.ratio:.3f} of {self.reference}" if self.ratio is not None else ""
        verdict = {True: "  [met]", False: "  [NOT MET]", None: ""}[self.met]
        target = f"  target {self.target}" if self.target else ""
        return f"{self.scenario:<12} {self.name:<44} {figure}{ratio}{target}{verdict}"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def ratio(value: float, reference: float) -> float | None:
    """`value / reference`, or None when the reference is zero."""
    return value / reference if reference else None
