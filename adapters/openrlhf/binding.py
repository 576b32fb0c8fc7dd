"""ttrl's group estimation inside OpenRLHF 0.11's synchronous PPO trainer.

OpenRLHF has no hook for group-level rewards, and its ``PPOTrainer`` is a Ray actor, so changes must
happen inside that actor's process. The launcher starts Ray with ``worker_process_setup_hook`` pointing
at :func:`setup_worker`; in every Ray worker it registers a post-import patch, so only processes that
import OpenRLHF's trainer modules are changed (vLLM engines, which never import them, stay untouched).

Patched, for OpenRLHF 0.11.x only (checked before launch):

- ``RemoteExperienceMaker.make_experience_batch``: the rollout batch arrives as one single-sample
  ``Experience`` per response, a prompt's ``n_votes`` responses contiguous. Per prompt group: decode the
  responses, optionally fetch token statistics from the actor, run the estimator (the dataset label is
  passed for metrics only), set each response's reward to the estimator's, keep the ``n_train`` chosen
  responses, and attach the step's reward-quality metrics to ``Experience.info`` (OpenRLHF logs info
  entries as ``ttrl/...``). Then OpenRLHF's own ``make_experience_batch`` runs on the kept responses with
  ``n_samples_per_prompt`` = ``n_train``, so ``compute_advantages_and_returns`` reshapes rewards into
  ``[-1, n_train]`` groups for ``group_norm``.
- ``BaseModelActor.ttrl_token_stats``: a new method reached through OpenRLHF's own ``execute_batch``;
  the actor's forward (logits already divided by the rollout temperature) plus full-vocabulary entropy
  and self-certainty from :mod:`ttrl.token_stats` (exact, chunked, float32). It costs one extra no-grad actor forward over all ``n_votes``
  responses, and runs only for estimators that need token statistics.
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
from collections.abc import Callable
from typing import Any

from .settings import SPEC_ENV

PATCH_FLAG = "_ttrl_patched"


# ── the patches ──────────────────────────────────────────────────────────────────────────────────


class _State:
    """Per-process estimator, built on first use from the spec."""

    def __init__(self, spec: dict[str, Any]):
        from ttrl.core.config import RunConfig
        from ttrl.core.estimation import EstimationPipeline
        from ttrl.core.plugins import default_plugins

        from .groups import GroupEstimator

        config = RunConfig.model_validate(spec["run"])
        pipeline = EstimationPipeline.from_config(config, default_plugins().registry)
        self.spec = spec
        self.n_votes = int(spec["n_votes"])
        self.n_train = int(spec["n_train"])
        self.use_stats = bool(spec["token_stats"])
        self.estimator = GroupEstimator(
            pipeline, n_votes=self.n_votes, n_train=self.n_train, task=config.answers.task
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


def split_groups(samples: list, n_votes: int) -> list[list]:
    """Consecutive blocks of ``n_votes`` samples, each from one prompt (OpenRLHF keeps them together)."""
    if len(samples) % n_votes:
        raise RuntimeError(
            f"ttrl: the rollout batch has {len(samples)} responses, not a multiple of n_votes={n_votes}; "
            "OpenRLHF's sample buffer must hold whole prompt groups"
        )
    groups = [samples[i : i + n_votes] for i in range(0, len(samples), n_votes)]
    for g, group in enumerate(groups):
        prompts = {s.prompts[0] for s in group}
        if len(prompts) != 1:
            raise RuntimeError(f"ttrl: responses of prompt group {g} come from {len(prompts)} different prompts")
    return groups


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
    for batch, result in zip(micro, results):
        for row, index in enumerate(batch.index):
            mask = batch.action_mask[row].bool()
            per_sample[index] = {name: values[row][mask].double().numpy() for name, values in result.items()}
    return per_sample


def make_experience_batch(self, rollout_samples):
    """Estimator rewards per prompt group, the train subset, metrics; then OpenRLHF's own method."""
    import torch

    state = _state()
    state.step += 1
    groups = split_groups(rollout_samples, state.n_votes)
    stats = _token_stats(self, rollout_samples) if state.use_stats else None
    kept = []
    for g, samples in enumerate(groups):
        label = samples[0].labels[0] if samples[0].labels else None
        reference = None if label is None or str(label).strip() == "" else str(label)
        result = state.estimator.estimate(
            f"step{state.step}/prompt{g}",
            samples[0].prompts[0],
            [decode_response(self.tokenizer, s) for s in samples],
            token_stats=stats[g * state.n_votes : (g + 1) * state.n_votes] if stats else None,
            reference=reference,
        )
        for i in result.train_indices:
            sample = samples[i]
            reward = torch.tensor([result.rewards[i]], dtype=torch.float32)
            sample.rewards = reward
            sample.info["reward"] = reward.clone()
            kept.append(sample)
    metrics = state.estimator.step_metrics()
    for sample in kept:
        for name, value in metrics.items():
            sample.info[f"ttrl/{name}"] = torch.tensor([float(value)])
    with _samples_per_prompt(self.strategy.args, state.n_train):
        return type(self)._ttrl_original_make_experience_batch(self, kept)


def actor_token_stats(self, sequences, action_mask=None, attention_mask=None, **_ignored):
    """On a policy actor: log-probs, entropy and self-certainty of the response tokens, zero-padded."""
    import torch

    from ttrl.token_stats import token_statistics

    device = torch.cuda.current_device() if torch.cuda.is_available() else next(self.actor.parameters()).device
    self.actor.eval()
    with torch.no_grad():
        log_probs, output = self.actor(
            sequences.to(device),
            action_mask.to(device),
            attention_mask.to(device),
            return_output=True,
            ring_attn_group=self.strategy.ring_attn_group,
        )
        # logits at position t predict token t+1: drop the last, keep the response's positions
        logits = output["logits"][:, :-1][:, -action_mask.shape[1] :]
        stats = token_statistics(logits)
        entropy, certainty = stats.entropy, stats.self_certainty
        del output, logits
    self.actor.train()
    mask = action_mask.to(device).float()
    return {
        "token_entropy": (entropy * mask).cpu(),
        "token_self_certainty": (certainty * mask).cpu(),
        "token_logprob": (log_probs.float() * mask).cpu(),
    }


def _patch_experience_maker(module) -> None:
    cls = module.RemoteExperienceMaker
    if getattr(cls, PATCH_FLAG, False):
        return
    cls._ttrl_original_make_experience_batch = cls.make_experience_batch
    cls.make_experience_batch = make_experience_batch
    setattr(cls, PATCH_FLAG, True)


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
    """Patch OpenRLHF in this process: modules already imported now, the others when imported."""
    global _SPEC, _STATE
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
