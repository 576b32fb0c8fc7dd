"""Seeded synthetic rollout groups with controllable difficulty, disagreement and token statistics.

The generator exists to ask "when does an estimator break?" without a GPU: each knob moves one
property of the data that label-free rewards depend on. Per problem *i* it draws an accuracy
``p_i ~ Beta`` (mean ``accuracy``, concentration ``accuracy_concentration``), a correct answer and
``wrong_answers`` distinct wrong ones with Dirichlet(``wrong_spread``) weights (the largest weight is
the problem's *shared wrong mode*). Each rollout then

1. with probability ``correlation`` copies the shared wrong mode (the "confirmation collapse" that
   DARE studies: rollouts agree with each other because they share a mistake, not because it is right);
2. otherwise gives no answer with probability ``no_answer``, the correct answer with probability
   ``p_i``, or a wrong answer drawn from the Dirichlet weights.

Token statistics come from a latent confidence ``z``: ``N(+signal/2, 1)`` for correct rollouts and
``N(-signal/2, 1)`` for incorrect ones, plus a per-problem offset. With probability
``confident_wrong`` an incorrect rollout draws ``z`` like a correct one ("confidently wrong").
From ``z`` (plus independent N(0, 0.3) noise per statistic): ``mean_entropy = 0.6·exp(-0.4 z)``
(nats, positive), ``mean_self_certainty = max(0.05, 3 + 1.2 z)``, ``mean_logprob = -0.9·mean_entropy`` (with noise) and ``num_tokens ~
Poisson(200·exp(-0.15 z)) + 1``: confident rollouts have lower entropy, higher self-certainty,
higher log-probability and are shorter, as observed for reasoning models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttrl.core.config import format_validation_error
from ttrl.core.data import GroupRecord, Rollout, RolloutGroup
from ttrl.core.errors import UserError


class SimulationSettings(BaseModel):
    """The knobs of ``ttrl bench --simulate`` (``--sim KEY=VALUE``; ``--sweep KEY=START:STOP:COUNT``)."""

    model_config = ConfigDict(extra="forbid")

    groups: int = Field(default=200, ge=1, description="Number of prompt groups.")
    rollouts: int = Field(default=16, ge=1, description="Rollouts per group (N).")
    seed: int = Field(default=0, description="Random seed; the same settings and seed give the same groups.")
    accuracy: float = Field(default=0.5, gt=0, lt=1, description="Mean per-problem accuracy (Beta mean).")
    accuracy_concentration: float = Field(
        default=2.0, gt=0, description="Beta concentration of per-problem accuracy: small = problems are easy or hard."
    )
    wrong_answers: int = Field(default=4, ge=1, description="Distinct wrong answers per problem.")
    wrong_spread: float = Field(
        default=1.0, gt=0, description="Dirichlet concentration over wrong answers: small = one dominant wrong answer."
    )
    correlation: float = Field(
        default=0.0, ge=0, le=1, description="Probability that a rollout copies the problem's shared wrong mode."
    )
    no_answer: float = Field(default=0.05, ge=0, lt=1, description="Probability that a rollout gives no answer.")
    signal: float = Field(
        default=1.0, description="Separation (in standard deviations) of correct and incorrect rollouts' confidence."
    )
    confident_wrong: float = Field(
        default=0.0, ge=0, le=1, description="Probability that an incorrect rollout is as confident as a correct one."
    )


SWEEPABLE = tuple(
    name for name, f in SimulationSettings.model_fields.items() if f.annotation is float
)


def settings_from_pairs(options: dict[str, Any], base: SimulationSettings | None = None) -> SimulationSettings:
    """Validate ``--sim`` knobs; errors name the knob and list the valid ones."""
    merged = {**(base.model_dump() if base else {}), **options}
    try:
        return SimulationSettings.model_validate(merged)
    except ValidationError as exc:
        raise UserError(
            format_validation_error(exc, what="simulation settings (--sim)")[:-1]
            + f". Knobs: {', '.join(SimulationSettings.model_fields)}; see docs/bench.md."
        ) from None


def _answer_text(answer: str | None, rng: np.random.Generator) -> str:
    if answer is None:
        return "Let me think about this step by step... I am not sure how to finish."
    steps = int(rng.integers(1, 4))
    return "Let me work through it. " * steps + f"So the answer is $\\boxed{{{answer}}}$."


def simulate(settings: SimulationSettings, start: int = 0, stop: int | None = None) -> list[GroupRecord]:
    """Generate groups ``start`` to ``stop`` (default: all ``settings.groups``) of ``settings.rollouts``
    rollouts (see the module docstring). A range is exactly that slice of the whole set, which is how
    a bench worker simulates its own shard."""
    s = settings
    a = s.accuracy * s.accuracy_concentration
    b = (1.0 - s.accuracy) * s.accuracy_concentration
    records = []
    for gi in range(start, s.groups if stop is None else min(stop, s.groups)):
        # one stream per group: the first k groups do not depend on `groups`, and a sweep changes
        # one knob while every group keeps its own random numbers
        rng = np.random.default_rng((s.seed, gi))
        p = float(rng.beta(a, b))
        values = rng.choice(np.arange(10, 10_000), size=s.wrong_answers + 1, replace=False)
        correct, wrong = str(values[0]), [str(v) for v in values[1:]]
        weights = rng.dirichlet(np.full(s.wrong_answers, s.wrong_spread))
        mode = int(np.argmax(weights))
        offset = float(rng.normal(0.0, 0.3))
        rollouts = []
        for _ in range(s.rollouts):
            if rng.random() < s.correlation:
                answer = wrong[mode]
            elif rng.random() < s.no_answer:
                answer = None
            elif rng.random() < p:
                answer = correct
            else:
                answer = wrong[int(rng.choice(s.wrong_answers, p=weights))]
            is_correct = answer == correct
            looks_correct = is_correct or rng.random() < s.confident_wrong
            z = rng.normal(s.signal / 2 if looks_correct else -s.signal / 2, 1.0) + offset
            # each statistic reads z through its own noise, so entropy and self-certainty rank differently
            z_entropy, z_certainty = z + rng.normal(0.0, 0.3, size=2)
            entropy = 0.6 * float(np.exp(-0.4 * z_entropy))
            stats = {
                "num_tokens": float(rng.poisson(200.0 * np.exp(-0.15 * z)) + 1),
                "mean_entropy": entropy,
                "mean_self_certainty": max(0.05, 3.0 + 1.2 * float(z_certainty)),
                "mean_logprob": -0.9 * entropy + float(rng.normal(0.0, 0.02)),
            }
            rollouts.append(Rollout(text=_answer_text(answer, rng), answer=answer, stats=stats))
        group = RolloutGroup(
            id=f"sim/{gi:05d}",
            prompt=f"Simulated problem {gi} (accuracy {p:.2f}).",
            rollouts=rollouts,
            task="math",
            meta={"simulated": True, "accuracy": round(p, 4), "seed": s.seed},
        )
        records.append(GroupRecord(group=group, reference=correct, source=f"simulation:{gi}"))
    return records


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``correlation=0:0.9:10`` -> ("correlation", 10 evenly spaced values from 0 to 0.9 inclusive)."""
    knob, sep, spec = text.partition("=")
    parts = spec.split(":")
    knob = knob.strip()
    if not sep or len(parts) != 3:
        raise UserError(f"--sweep {text!r} is not KNOB=START:STOP:COUNT. Example: --sweep correlation=0:0.9:10")
    if knob not in SWEEPABLE:
        raise UserError(f"--sweep: {knob!r} cannot be swept. Sweepable knobs: {', '.join(SWEEPABLE)}.")
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise UserError(f"--sweep {text!r}: START and STOP must be numbers and COUNT an integer.") from None
    if count < 2:
        raise UserError(f"--sweep {text!r}: COUNT must be at least 2.")
    return knob, [round(float(v), 10) for v in np.linspace(start, stop, count)]
