"""Learning-rate schedules: a pure function of the step, so a resumed run follows the same curve."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "poly", "cosine")
"""``constant`` (the paper: Adam's default rate throughout), ``poly`` (nnU-Net: ``(1 - t)^0.9``),
``cosine`` (half a cosine down to 0); each after an optional linear warm-up."""


def learning_rate(step: int, total: int, base: float, schedule: str = "constant", warmup: int = 0,
                  power: float = 0.9) -> float:
    """The learning rate of optimisation step ``step`` (0-based) of ``total``.

    Args:
        base: the peak rate.
        schedule: one of :data:`SCHEDULES`.
        warmup: steps of linear warm-up from ``base / warmup`` to ``base``.
        power: exponent of the ``poly`` schedule.

    Raises:
        ValueError: unknown schedule, negative step or warm-up, non-positive total.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"lr schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    if total < 1 or step < 0 or warmup < 0:
        raise ValueError(f"need total >= 1, step >= 0 and warmup >= 0, got {total}, {step}, {warmup}")
    if step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant":
        return base
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "poly":
        return base * (1.0 - t) ** power
    return base * 0.5 * (1.0 + math.cos(math.pi * t))


__all__ = ["SCHEDULES", "learning_rate"]
