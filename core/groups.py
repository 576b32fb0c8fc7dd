"""The trainer-agnostic group layer: one prompt's responses in, validated rewards and metrics out.

Every trainer adapter (OpenRLHF, TRL, verl) hands each prompt group to a :class:`GroupEstimator`:
the responses' texts, their per-token statistics (arrays named like the ``token_*`` fields of
:data:`ttrl.core.data.TOKEN_FIELDS`) and, for metrics only, the reference answer. It gets back a
:class:`GroupResult`: one reward per response, which responses to train on, and whether the group
was scored, ``filtered`` by the estimator (e.g. majority_vote's ``min_majority_ratio``) or ``failed``.

One policy for a group the estimator cannot score — missing or non-finite statistics (an empty
response has none), an estimator exception, invalid output, or the per-group time limit — chosen in
the run config (``groups: {on_failure: skip | stop}``): ``skip`` gives the group no learning signal
(no response of it is trained on), counts it in ``failed_groups`` and goes on; ``stop`` raises
:class:`~ttrl.core.errors.UnscoreableGroup`. Filtered groups are never trained on either. The
adapters only translate "not trained" into their framework (TRL: reward ``None``; OpenRLHF:
advantage 0).

Step metrics (:data:`STEP_METRIC_NAMES`) are the same in every trainer; see :class:`StepMetrics`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .config import ComponentSpec, RunConfig
from .data import STAT_FIELDS, TOKEN_FIELDS, AnswerClasses, Estimate, Rollout, RolloutGroup
from .errors import EstimatorFailure, EstimatorInputError, GroupLayoutError, OptionError, UnscoreableGroup
from .estimation import EstimationPipeline
from .metrics import GroupScore, MetricsAccumulator, evaluate_group, score_group
from .registry import ANSWERS, Registry

logger = logging.getLogger(__name__)

#: Rollout inputs a trainer adapter can provide: answers (extracted from the text) and every
#: statistic of the data model, computed from the policy's logits. New fields of
#: :mod:`ttrl.core.data` are provided without adapter changes.
TRAINER_INPUTS = frozenset({ANSWERS, *STAT_FIELDS, *TOKEN_FIELDS})

Status = Literal["scored", "filtered", "failed"]

#: Metric names, identical in every trainer (adapters log them as ``ttrl/<name>``).
REFERENCE_METRICS = ("label_accuracy", "reward_accuracy", "pairwise_accuracy", "ground_truth_ratio", "pass_at_n")
TRAINED_METRICS = ("trained_reward_accuracy", "trained_ground_truth_ratio", "trained_pass_at_n")
REWARD_METRICS = ("reward_mean", "trained_reward_mean")
COUNT_METRICS = ("groups", "scored_groups", "filtered_groups", "failed_groups")
HEALTH_METRICS = ("majority_ratio", "answer_entropy", "distinct_answers", "no_answer_ratio", "response_tokens")
STEP_METRIC_NAMES = REFERENCE_METRICS + TRAINED_METRICS + REWARD_METRICS + COUNT_METRICS + HEALTH_METRICS


@dataclass(frozen=True, slots=True)
class Response:
    """One sampled response as a trainer hands it over.

    ``token_stats`` maps ``token_*`` field names of :data:`TOKEN_FIELDS` to per-token arrays over the
    response's generated tokens only (no prompt, no padding); ``num_tokens`` is the response length
    in tokens when known (for the health metrics; taken from the arrays otherwise).
    """

    text: str
    token_stats: Mapping[str, Any] | None = None
    num_tokens: int | None = None


def build_rollout(response: Response) -> Rollout:
    """A :class:`Rollout` with the response's token arrays and their means (``stats.mean_*``).

    An empty array (an empty response) gives ``num_tokens`` 0 and no means: an estimator that needs
    them reports the group as unscoreable rather than reading a NaN.
    """
    rollout = Rollout(text=response.text)
    arrays = response.token_stats or {}
    unknown = set(arrays) - set(TOKEN_FIELDS)
    if unknown:
        raise ValueError(f"unknown token statistics {sorted(unknown)}; known: {sorted(TOKEN_FIELDS)}")
    length = response.num_tokens
    for name, mean_name in TOKEN_FIELDS.items():
        if name not in arrays or arrays[name] is None:
            continue
        values = np.asarray(arrays[name], dtype=np.float64).reshape(-1)
        setattr(rollout, name, values)
        if len(values):
            rollout.stats[mean_name] = float(values.mean())
        length = len(values) if length is None else length
    if length is not None:
        rollout.stats["num_tokens"] = float(length)
    return rollout


def consecutive_groups(keys: Sequence[Hashable], size: int) -> list[range]:
    """Positions of each prompt group in a flat batch where groups of ``size`` sit next to each other.

    Groups are found by position, not by comparing keys (two dataset rows may share a prompt); each
    block is checked to hold one key, so a sampler that stops keeping groups together fails loudly
    instead of mixing two prompts' votes.
    """
    if size < 1:
        raise ValueError(f"group size must be >= 1, got {size}")
    if len(keys) % size:
        raise GroupLayoutError(
            f"The trainer passed {len(keys)} responses, not a multiple of the group size {size}: prompt groups "
            "would be cut apart. Make the number of prompts per batch a whole number of groups."
        )
    blocks = [range(start, start + size) for start in range(0, len(keys), size)]
    for block in blocks:
        distinct = {keys[i] for i in block}
        if len(distinct) != 1:
            shown = sorted(map(str, distinct))[:4]
            raise GroupLayoutError(
                f"A block of {size} consecutive responses mixes prompts {shown}: the trainer did not keep each "
                "prompt's responses together, so their votes cannot be counted. This ttrl adapter supports "
                "trainer versions that sample each prompt's responses in a row."
            )
    return blocks


def stats_required(pipeline: EstimationPipeline) -> frozenset[str]:
    """The rollout statistics (not answers) that the estimator and shapers read."""
    return frozenset(pipeline.requires - {ANSWERS})


def bind_train_size(
    config: RunConfig, registry: Registry, *, n_votes: int, n_train: int | None, section: str,
    votes_key: str = "n_votes",
) -> RunConfig:
    """Check ``n_train <= n_votes`` and hand ``n_train`` to an estimator that has an ``n_train`` option.

    ``section`` is the trainer's run-config section (``openrlhf``, ``trl``, ``verl``) holding
    ``n_train`` and ``votes_key`` (the number of responses per prompt); errors point at its line. An ``n_train`` in the estimator's options that contradicts
    it, or exceeds ``n_votes``, is refused.
    """
    spec = config.estimator
    if n_train is not None and n_train > n_votes:
        where = config.locate((section, "n_train"))
        raise OptionError(
            f"{section}.n_train ({n_train}) must not exceed {section}.{votes_key} ({n_votes})"
            + (f" ({where})" if where else "")
            + ": the trained responses are a subset of the voting ones (TTRL: 64 votes, 32 trained)."
        )
    given = spec.options.get("n_train") if spec is not None else None
    if isinstance(given, int) and not isinstance(given, bool) and given > n_votes:
        where = config.locate(("estimator", "options", "n_train"))
        raise OptionError(
            f"Estimator {spec.name!r} option n_train={given}" + (f" ({where})" if where else "")
            + f" is larger than {section}.{votes_key}={n_votes}, the number of responses that vote: it must "
            f"train on at most as many as vote. Set the train size once, as {section}.n_train."
        )
    if spec is None or n_train is None or n_train >= n_votes:
        return config
    info = registry.estimators.get(spec.name)
    if info.options is None or "n_train" not in info.options.model_fields:
        return config
    if given is not None and given != n_train:
        where = config.locate(("estimator", "options", "n_train"))
        raise OptionError(
            f"estimator.options.n_train is {given} but {section}.n_train is {n_train}"
            + (f" ({where})" if where else "")
            + f". Set the train size once, in the {section}: section."
        )
    options = {**spec.options, "n_train": n_train}
    # model_copy keeps the private file:line locator
    return config.model_copy(update={"estimator": ComponentSpec(name=spec.name, options=options, label=spec.label)})


@dataclass(slots=True)
class GroupResult:
    """What the layer decided for one prompt group."""

    group_id: str
    #: The estimator's (and shapers') reward for every response; NaN for every response of a failed group.
    rewards: list[float]
    #: Responses the trainer learns from, sorted; empty when the group is filtered or failed.
    train_indices: list[int]
    label: str | None
    status: Status
    #: Why the group is filtered or failed (``None`` when scored).
    reason: str | None = None
    #: For failed groups: ``inputs`` (missing / non-finite statistics), ``error``, ``bad_output`` or ``timeout``.
    failure_kind: str | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    classes: AnswerClasses | None = None
    #: Reward-quality metrics over all responses, and over the trained ones (``None`` without a reference).
    score: GroupScore | None = None
    trained_score: GroupScore | None = None

    @property
    def trained(self) -> bool:
        return self.status == "scored"

    def trainer_rewards(self) -> list[float | None]:
        """Reward per response for the trainer: the estimator's for trained responses, else ``None``."""
        keep = set(self.train_indices)
        return [r if i in keep else None for i, r in enumerate(self.rewards)]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record of this group (run summaries, logs)."""
        record: dict[str, Any] = {
            "id": self.group_id,
            "status": self.status,
            "label": self.label,
            "rewards": [None if math.isnan(r) else r for r in self.rewards],
            "train_indices": list(self.train_indices),
            "answers": None if self.classes is None else list(self.classes.answers),
        }
        if self.reason is not None:
            record["reason"] = self.reason
        return record


def _health(classes: AnswerClasses | None, rollouts: Sequence[Rollout]) -> dict[str, float]:
    """Label-free signals of one group: watch them for collapse when no labels exist."""
    n = len(rollouts)
    out: dict[str, float] = {}
    if classes is not None and n:
        sizes = np.asarray(classes.sizes(), dtype=np.float64)
        unanswered = n - float(sizes.sum())
        out["majority_ratio"] = float(sizes.max()) / n if sizes.size else 0.0
        # answer classes plus one bucket for "no answer", as fractions of all N responses
        p = np.append(sizes, unanswered) / n
        p = p[p > 0]
        out["answer_entropy"] = float(-(p * np.log(p)).sum())
        out["distinct_answers"] = float(sizes.size)
        out["no_answer_ratio"] = unanswered / n
    lengths = [r.stats.get("num_tokens") for r in rollouts]
    if n and all(v is not None for v in lengths):
        out["response_tokens"] = float(np.mean(lengths))
    return out


class StepMetrics:
    """Adds up :class:`GroupResult` values over one training step; :meth:`result` gives the metrics.

    - over all ``n_votes`` responses of the groups the estimator returned an estimate for (scored and
      filtered), against the reference (groups without one are left out): ``label_accuracy``,
      ``reward_accuracy``, ``pairwise_accuracy``, ``ground_truth_ratio``, ``pass_at_n`` (docs/formats.md
      definitions; TTRL logs the same names);
    - over the ``n_train`` trained responses of the trained groups: ``trained_reward_accuracy``,
      ``trained_ground_truth_ratio``, ``trained_pass_at_n`` (TTRL's ``post_*`` metrics);
    - ``reward_mean`` over all responses of the trained groups, ``trained_reward_mean`` over the
      trained responses;
    - ``groups``, ``scored_groups``, ``filtered_groups``, ``failed_groups``;
    - label-free health signals, averaged over every group: ``majority_ratio`` (largest answer class
      / N, TTRL's definition), ``answer_entropy`` (nats, over the answer classes plus "no answer"),
      ``distinct_answers``, ``no_answer_ratio``, ``response_tokens`` (mean response length).

    Metrics that do not apply this step (no reference, no trained group) are left out.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._all = MetricsAccumulator()
        self._trained = MetricsAccumulator()
        self._rewards: list[float] = []
        self._trained_rewards: list[float] = []
        self._counts = dict.fromkeys(COUNT_METRICS, 0)
        self._health: dict[str, list[float]] = {name: [] for name in HEALTH_METRICS}

    def add(self, result: GroupResult, health: Mapping[str, float]) -> None:
        self._counts["groups"] += 1
        self._counts[f"{result.status}_groups"] += 1
        for name, value in health.items():
            self._health[name].append(value)
        if result.score is not None:
            self._all.add(result.score)
        if result.trained:
            self._rewards.extend(result.rewards)
            self._trained_rewards.extend(result.rewards[i] for i in result.train_indices)
            if result.trained_score is not None:
                self._trained.add(result.trained_score)

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self._all.scores:
            for name, value in self._all.result().items():
                if name in REFERENCE_METRICS and value is not None:
                    out[name] = float(value)
        if self._trained.scores:
            for name, value in self._trained.result().items():
                if f"trained_{name}" in TRAINED_METRICS and value is not None:
                    out[f"trained_{name}"] = float(value)
        if self._rewards:
            out["reward_mean"] = float(np.mean(self._rewards))
            out["trained_reward_mean"] = float(np.mean(self._trained_rewards))
        out.update({name: float(count) for name, count in self._counts.items()})
        for name, values in self._health.items():
            if values:
                out[name] = float(np.mean(values))
        return out


class GroupEstimator:
    """Runs an :class:`EstimationPipeline` on one prompt group at a time, with the failure policy,
    the train-subset rule and the step metrics every trainer shares.

    ``n_votes`` responses per group all vote; ``n_train`` of them are trained on: the estimate's
    ``train_indices`` when it names them (exactly ``n_train`` are required), else the first
    ``n_train`` (samples are i.i.d., as TTRL's reference code assumes). With ``n_train=None`` the
    trainer fixes no train size: the estimate's ``train_indices`` when it names them, else all.
    """

    def __init__(
        self,
        pipeline: EstimationPipeline,
        *,
        n_votes: int,
        n_train: int | None = None,
        on_failure: Literal["skip", "stop"] = "skip",
        meta: Mapping[str, Any] | None = None,
    ):
        if n_votes < 1:
            raise ValueError(f"n_votes must be >= 1, got {n_votes}")
        if n_train is not None and not 1 <= n_train <= n_votes:
            raise OptionError(f"n_train ({n_train}) must be between 1 and n_votes ({n_votes}).")
        if on_failure not in ("skip", "stop"):
            raise ValueError(f"on_failure must be 'skip' or 'stop', got {on_failure!r}")
        self.pipeline = pipeline
        self.n_votes = n_votes
        #: Responses trained on per group (``n_votes`` when the trainer fixes no train size).
        self.n_train = n_votes if n_train is None else n_train
        self._fixed_train_size = n_train is not None
        self.on_failure = on_failure
        #: What every group's ``meta`` says about how its responses were made (like a rollout file's
        #: ``meta``: sampling temperature, ``confidence_k`` of the token confidence, ...).
        self.meta = dict(meta or {})
        self.metrics = StepMetrics()

    @classmethod
    def from_config(
        cls, config: RunConfig, registry: Registry, *, n_votes: int, n_train: int | None, section: str,
        votes_key: str = "n_votes",
    ) -> GroupEstimator:
        """Bind the train size into the estimator's options, build the pipeline, read ``groups:``."""
        config = bind_train_size(
            config, registry, n_votes=n_votes, n_train=n_train, section=section, votes_key=votes_key
        )
        pipeline = EstimationPipeline.from_config(config, registry)
        return cls(pipeline, n_votes=n_votes, n_train=n_train, on_failure=config.groups.on_failure)

    @property
    def stats_needed(self) -> frozenset[str]:
        """Statistics the trainer must compute for every response (empty: texts suffice)."""
        return stats_required(self.pipeline)

    def estimate(
        self,
        group_id: str,
        prompt: str,
        responses: Sequence[Response],
        *,
        reference: str | None = None,
        task: str | None = None,
    ) -> GroupResult:
        """Rewards, train subset and metrics for one prompt's ``n_votes`` responses.

        ``reference`` is used for metrics only: the estimator never sees it. ``task`` selects the
        answer extractor (``answers.task`` in the run config overrides it).
        """
        if len(responses) != self.n_votes:
            raise GroupLayoutError(
                f"Group {group_id!r} has {len(responses)} responses, but {self.n_votes} vote per prompt."
            )
        group = RolloutGroup(
            id=group_id, prompt=prompt, rollouts=[build_rollout(r) for r in responses], meta=dict(self.meta)
        )
        if task:
            group.task = task
        result = self._estimate(group, reference)
        health = _health(group.classes, group.rollouts)
        self.metrics.add(result, health)
        if result.status == "failed":
            if self.on_failure == "stop":
                raise UnscoreableGroup(
                    f"Group {group_id!r} cannot be scored: {result.reason}. The run config says "
                    "groups.on_failure: stop, so training ends here; with on_failure: skip such a group "
                    "gives no learning signal and is counted in failed_groups."
                )
            logger.warning("ttrl: group %r gives no learning signal: %s", group_id, result.reason)
        return result

    def estimate_batch(
        self,
        group_ids: Sequence[str],
        prompts: Sequence[str],
        responses: Sequence[Response],
        *,
        references: Sequence[str | None] | None = None,
        tasks: Sequence[str | None] | None = None,
        keys: Sequence[Hashable] | None = None,
    ) -> list[GroupResult]:
        """:meth:`estimate` for each prompt group of a flat trainer batch, in batch order.

        The batch holds whole groups of ``n_votes`` consecutive responses (checked with
        :func:`consecutive_groups` on ``keys``, by default ``group_ids``); each group's id, prompt,
        reference and task are those of its first response.
        """
        results = []
        for block in consecutive_groups(list(keys if keys is not None else group_ids), self.n_votes):
            first = block.start
            results.append(
                self.estimate(
                    group_ids[first], prompts[first], [responses[i] for i in block],
                    reference=None if references is None else references[first],
                    task=None if tasks is None else tasks[first],
                )
            )
        return results

    def _estimate(self, group: RolloutGroup, reference: str | None) -> GroupResult:
        pipeline = self.pipeline
        try:
            # answers are extracted for every estimator: the health metrics read them
            group.classes = pipeline.classify(group)
            pipeline.check_inputs(group)
            estimate = pipeline.run(group)
            train = self._train_indices(estimate, group)
        except EstimatorInputError as exc:
            return self._failed(group, str(exc), "inputs")
        except EstimatorFailure as exc:
            return self._failed(group, str(exc), exc.kind)
        truth = pipeline.grade(group, reference)
        score = trained_score = None
        if truth is not None:
            score = evaluate_group(pipeline.engine, group.classes, truth, estimate.rewards, estimate.label)
            trained_score = score_group(
                [estimate.rewards[i] for i in train], [truth.correct[i] for i in train],
                label=None, label_correct=None, label_size=None,
            )
        filtered = bool(estimate.diagnostics.get("filtered"))
        reason = estimate.diagnostics.get("reason") if filtered else None
        return GroupResult(
            group_id=group.id,
            rewards=list(estimate.rewards),
            train_indices=[] if filtered else train,
            label=estimate.label,
            status="filtered" if filtered else "scored",
            reason=None if not filtered else str(reason or "flagged filtered by the estimator"),
            diagnostics=dict(estimate.diagnostics),
            classes=group.classes,
            score=score,
            trained_score=trained_score,
        )

    def _train_indices(self, estimate: Estimate, group: RolloutGroup) -> list[int]:
        if estimate.train_indices is None:
            return list(range(self.n_train))
        if not self._fixed_train_size:
            return list(estimate.train_indices)
        if len(estimate.train_indices) != self.n_train:
            info = self.pipeline.estimator.info
            raise EstimatorFailure(
                info.name, group.id,
                f"train_indices names {len(estimate.train_indices)} responses, but n_train is {self.n_train}",
                plugin=info.plugin, kind="bad_output",
            )
        return list(estimate.train_indices)

    @staticmethod
    def _failed(group: RolloutGroup, reason: str, kind: str) -> GroupResult:
        return GroupResult(
            group_id=group.id,
            rewards=[math.nan] * len(group.rollouts),
            train_indices=[],
            label=None,
            status="failed",
            reason=reason,
            failure_kind=kind,
            classes=group.classes,
        )

    def step_metrics(self) -> dict[str, float]:
        """Metrics since the last call (one training step), then reset."""
        out = self.metrics.result()
        self.metrics.reset()
        return out
