"""ttrl's group estimation inside OpenRLHF 0.11's synchronous PPO trainer.

OpenRLHF has no hook for group-level rewards, and its ``PPOTrainer`` is a Ray actor, so changes must
happen inside that actor's process. The launcher starts Ray with ``worker_process_setup_hook`` pointing
at :func:`setup_worker`; in every Ray worker it registers a post-import patch, so only processes that
import OpenRLHF's trainer modules are changed (vLLM engines, which never import them, stay untouched).

Patched, for the OpenRLHF versions in ``settings.TESTED_VERSIONS`` (checked by ``ttrl train`` and
again by :func:`install` in every Ray worker):

- ``RemoteExperienceMaker.make_experience_batch``: the rollout batch arrives as one single-sample
  ``Experience`` per response, a prompt's ``n_votes`` responses contiguous, **with no reward** (ttrl's
  reward file returns the ground-truth grade as ``scores`` only). The group layer
  (:mod:`ttrl.core.groups`) scores each prompt group: decoded responses, token statistics from the
  actor when the estimator needs them, the label for metrics only. The ``n_train`` responses to train
  on get the estimator's rewards; a filtered or unscoreable group hands on its first ``n_train`` with
  reward 0 and, after OpenRLHF's advantage computation, advantage 0 (the batch keeps the size its
  micro-batches and ZeRO gradient accumulation expect). The step's metrics ride in
  ``Experience.info`` (OpenRLHF logs them as ``ttrl/...``). OpenRLHF's own ``make_experience_batch``
  then runs on the kept responses with ``n_samples_per_prompt`` = ``n_train``.
  Without this patch OpenRLHF finds no reward and stops on the first step: nothing can train on labels.
- ``SamplesGenerator.generate_eval_samples``: evaluation is graded against the labels (the grader's
  score becomes the reward) and sampled with ``eval_top_p``.
- ``BaseModelActor.ttrl_token_stats``: a new method reached through OpenRLHF's own ``execute_batch``:
  a no-grad forward of the Hugging Face model inside the actor, then full-vocabulary statistics of
  the response tokens only (:func:`ttrl.token_stats.response_token_stats`, chunked) at the run's
  temperature. It runs only for estimators that need token statistics.
- ``ppo_trainer.prepare_datasets``: the learning-rate schedule's step count assumes every generated
  response is trained on; it is scaled by ``n_train / n_votes``.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ttrl.core.groups import GroupEstimator, GroupResult, Response

from .settings import SPEC_ENV, TESTED_VERSIONS, check_version

PATCH_FLAG = "_ttrl_patched"


# ── the patches ──────────────────────────────────────────────────────────────────────────────────


class _State:
    """Per-process group layer, built on first use from the spec."""

    def __init__(self, spec: dict[str, Any]):
        from ttrl.core.config import RunConfig
        from ttrl.core.estimation import EstimationPipeline
        from ttrl.core.plugins import default_plugins

        config = RunConfig.model_validate(spec["run"])
        pipeline = EstimationPipeline.from_config(config, default_plugins().registry)
        self.spec = spec
        self.n_votes = int(spec["n_votes"])
        self.n_train = int(spec["n_train"])
        self.use_stats = bool(spec["token_stats"])
        #: The training rollouts' sampling temperature, from the run's settings (token statistics use it).
        self.temperature = float(spec["temperature"])
        self.groups = GroupEstimator(
            pipeline, n_votes=self.n_votes, n_train=self.n_train, on_failure=config.groups.on_failure
        )
        self.step = 0


_SPEC: dict[str, Any] | None = None
_STATE: _State | None = None


def _state() -> _State:
    global _STATE
    if _STATE is None:
        if _SPEC is None:
            raise RuntimeError("ttrl's OpenRLHF binding is patched in but has no spec; call install(spec) first")
        _STATE = _State(_SPEC)
    return _STATE


def decode_response(tokenizer, experience) -> str:
    """The response text of a single-sample ``Experience`` (``action_mask`` is shifted by one token)."""
    sequence = experience.sequences[0]
    mask = experience.action_mask[0].bool()
    tokens = sequence[1:][: mask.shape[0]][mask]
    return tokenizer.decode(tokens.tolist(), skip_special_tokens=True)


@dataclass
class Selection:
    """Which of a rollout batch's samples go on to OpenRLHF's experience making, with which reward."""

    #: Indices into the rollout batch: ``n_train`` per prompt group, in group order.
    kept: list[int]
    #: The estimator's reward for each kept sample (0.0 in groups that give no learning signal).
    rewards: list[float]
    #: False for kept samples of filtered or unscoreable groups: their advantages are set to 0.
    trained: list[bool]
    results: list[GroupResult]
    metrics: dict[str, float]


def select_training_samples(
    groups: GroupEstimator,
    group_ids: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any],
    responses: Sequence[Response],
) -> Selection:
    """The framework-free half of :func:`make_experience_batch`: one call of the group layer per prompt.

    A group that gives no learning signal still hands its first ``n_train`` samples on, with reward 0
    and ``trained`` False, so that OpenRLHF's batch keeps the size its micro-batches and ZeRO
    gradient accumulation were planned for; their advantages are zeroed afterwards.
    """
    references = [None if label is None or str(label).strip() == "" else str(label) for label in labels]
    # groups are checked by prompt text: the ids are made up from positions
    results = groups.estimate_batch(group_ids, prompts, responses, references=references, keys=prompts)
    kept: list[int] = []
    rewards: list[float] = []
    trained: list[bool] = []
    for g, result in enumerate(results):
        start = g * groups.n_votes
        for i in result.train_indices if result.trained else range(groups.n_train):
            kept.append(start + i)
            rewards.append(result.rewards[i] if result.trained else 0.0)
            trained.append(result.trained)
    return Selection(kept, rewards, trained, results, groups.step_metrics())


@contextlib.contextmanager
def _samples_per_prompt(args, n: int):
    """OpenRLHF reads the group size from its args; during advantage computation it is n_train."""
    saved = args.rollout.n_samples_per_prompt
    args.rollout.n_samples_per_prompt = n
    try:
        yield
    finally:
        args.rollout.n_samples_per_prompt = saved


def _token_stats(self, samples: list) -> list[dict[str, Any]]:
    """Per response, its token arrays from the actor (one extra no-grad forward)."""
    import ray

    args = self.strategy.args
    micro = self.split_rollout_samples(samples)
    refs = self.actor_model_group.async_run_method_batch(
        method_name="ttrl_token_stats",
        sequences=[m.sequences for m in micro],
        action_mask=[m.action_mask for m in micro],
        attention_mask=[m.attention_mask for m in micro],
    )
    if args.train.colocate_all or args.train.colocate_actor_ref:
        ray.get(refs)
        ray.get(self.actor_model_group.async_run_method(method_name="empty_cache"))
    results = self._flatten_results(refs, args.ds.ring_attn_size * args.ds.tensor_parallel_size)
    per_sample: list[dict[str, Any] | None] = [None] * len(samples)
    for batch, rows in zip(micro, results):
        for row, index in enumerate(batch.index):
            per_sample[index] = rows[row]
    return per_sample


def make_experience_batch(self, rollout_samples):
    """Estimator rewards per prompt group, the train subset, metrics; then OpenRLHF's own method."""
    import torch

    state = _state()
    state.step += 1
    preset = [i for i, s in enumerate(rollout_samples) if s.rewards is not None]
    if preset:
        raise RuntimeError(
            f"ttrl: {len(preset)} of {len(rollout_samples)} rollout samples already carry a reward (from "
            "--reward.remote_url or an agent); ttrl trains only on the estimator's rewards and refuses to "
            "mix in others. Let `ttrl train` generate the reward file."
        )
    stats = _token_stats(self, rollout_samples) if state.use_stats else [None] * len(rollout_samples)
    responses = [
        Response(decode_response(self.tokenizer, s), token_stats=arrays, num_tokens=int(s.action_mask[0].sum()))
        for s, arrays in zip(rollout_samples, stats)
    ]
    prompts = [s.prompts[0] for s in rollout_samples]
    group_ids = [f"step{state.step}/prompt{i // state.n_votes}" for i in range(len(rollout_samples))]
    labels = [s.labels[0] if s.labels else None for s in rollout_samples]
    selection = select_training_samples(state.groups, group_ids, prompts, labels, responses)
    kept = []
    for index, reward in zip(selection.kept, selection.rewards):
        sample = rollout_samples[index]
        value = torch.tensor([reward], dtype=torch.float32)
        sample.rewards = value
        sample.info["reward"] = value.clone()
        for name, metric in selection.metrics.items():
            sample.info[f"ttrl/{name}"] = torch.tensor([float(metric)])
        kept.append(sample)
    with _samples_per_prompt(self.strategy.args, state.n_train):
        experiences = type(self)._ttrl_original_make_experience_batch(self, kept)
    untrained = {position for position, trained in enumerate(selection.trained) if not trained}
    if untrained:
        for experience in experiences:
            for row, position in enumerate(experience.index):
                if position in untrained:
                    experience.advantages[row].zero_()
                    if experience.returns is not None:
                        experience.returns[row].zero_()
    return experiences


def actor_token_stats(self, sequences, action_mask=None, attention_mask=None, **_ignored):
    """On a policy actor: per response, the token statistics of its generated tokens (numpy arrays).

    Calls the Hugging Face model inside OpenRLHF's ``Actor`` directly, so the logits are the raw ones
    (OpenRLHF's own forward makes a float32 copy of all of them and divides it by its temperature in
    place); the temperature is the run's, from the spec, and only response positions are computed.
    """
    import torch

    from ttrl.token_stats import response_token_stats

    device = torch.cuda.current_device() if torch.cuda.is_available() else next(self.actor.parameters()).device
    sequences = sequences.to(device)
    attention_mask = attention_mask.to(device)
    # the position ids OpenRLHF's Actor uses for unpacked, right-padded sequences
    position_ids = attention_mask.long().cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    width = action_mask.shape[1]
    self.actor.eval()
    try:
        with torch.no_grad():
            logits = self.actor.model(sequences, attention_mask=attention_mask, position_ids=position_ids).logits
            # logits at position t predict token t + 1; action_mask[:, j] marks token j + 1 of the last `width`
            return response_token_stats(
                logits[:, :-1][:, -width:],
                action_mask.bool(),
                tokens=sequences[:, 1:][:, -width:],
                temperature=_state().temperature,
            )
    finally:
        self.actor.train()


def generate_eval_samples(self, **generate_kwargs):
    """OpenRLHF's evaluation, graded against the labels: the grader's score becomes the eval reward.

    ttrl's generated reward file gives no training reward (only ``scores``), so that an OpenRLHF
    trainer without ttrl's patch cannot train on labels; evaluation reads ``rewards``, hence the copy.
    OpenRLHF samples evaluation with the training rollouts' ``top_p``; TTRL evaluates with its own
    (``eval_top_p`` in the settings, 0.95).
    """
    spec = _SPEC or {}
    if "eval_top_p" in spec:
        generate_kwargs = {**generate_kwargs, "top_p": float(spec["eval_top_p"])}
    samples = type(self)._ttrl_original_generate_eval_samples(self, **generate_kwargs)
    for sample in samples:
        if sample.rewards is None and sample.scores is not None:
            sample.rewards = sample.scores.clone()
    return samples


def _original(cls, name: str) -> Callable:
    method = getattr(cls, name, None)
    if method is None:
        raise RuntimeError(
            f"ttrl: OpenRLHF's {cls.__module__}.{cls.__name__} has no {name!r}; this OpenRLHF is not one ttrl's "
            f"adapter was tested with ({', '.join(TESTED_VERSIONS)})."
        )
    return method


def _replace_method(cls, name: str, replacement: Callable) -> None:
    """``cls.name = replacement``, the original kept as ``cls._ttrl_original_<name>``; once per class."""
    flag = f"{PATCH_FLAG}_{name}"
    if getattr(cls, flag, False):
        return
    setattr(cls, f"_ttrl_original_{name}", _original(cls, name))
    setattr(cls, name, replacement)
    setattr(cls, flag, True)


def _patch_experience_maker(module) -> None:
    _replace_method(module.RemoteExperienceMaker, "make_experience_batch", make_experience_batch)


def _patch_samples_generator(module) -> None:
    _replace_method(module.SamplesGenerator, "generate_eval_samples", generate_eval_samples)


def _patch_model_actor(module) -> None:
    module.BaseModelActor.ttrl_token_stats = actor_token_stats


def _patch_trainer_module(module) -> None:
    original = module.prepare_datasets
    if getattr(original, PATCH_FLAG, False):
        return

    def prepare_datasets(strategy, tokenizer):
        prompts, evals, max_steps = original(strategy, tokenizer)
        state = _state()
        return prompts, evals, max(1, max_steps * state.n_train // state.n_votes)

    setattr(prepare_datasets, PATCH_FLAG, True)
    module.prepare_datasets = prepare_datasets


PATCHES: dict[str, Callable[[Any], None]] = {
    "openrlhf.trainer.ppo_utils.experience_maker": _patch_experience_maker,
    "openrlhf.trainer.ppo_utils.samples_generator": _patch_samples_generator,
    "openrlhf.trainer.ray.launcher": _patch_model_actor,
    "openrlhf.trainer.ppo_trainer": _patch_trainer_module,
}


# ── applying them when (and only if) OpenRLHF's modules are imported ─────────────────────────────


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch: Callable[[Any], None]):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):  # get_source, get_filename, ... for tracebacks and inspect
        return getattr(self._loader, name)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


def install(spec: dict[str, Any]) -> None:
    """Patch OpenRLHF in this process: modules already imported now, the others when imported.

    The OpenRLHF version is checked here too, in every Ray worker, not only by ``ttrl train``: a job
    submitted by hand or a worker node with another OpenRLHF must not run with patches that do not fit.
    """
    global _SPEC, _STATE
    check_version()
    _SPEC, _STATE = spec, None
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def setup_worker() -> None:
    """Ray ``worker_process_setup_hook``: install the binding when the launcher passed a spec."""
    raw = os.environ.get(SPEC_ENV)
    if raw:
        install(json.loads(raw))
