"""ttrl's verl trainer: verl 0.9's synchronous PPO trainer with group-level estimation.

Registered in verl's trainer registry as ``trainer.v1.trainer_mode: ttrl``. It changes one step of
``PPOTrainerSync``: before verl computes advantages (after the actor's log-prob pass, so verl's own
entropy and log-probs at the rollout temperature are in the batch), it reads the step's responses
from verl's TransferQueue, scores every ``uid`` group with ttrl's group layer
(:func:`ttrl.adapters.verl.batch.score_batch`), writes the rewards (``rm_scores``) and the train mask
back, and lets verl's own ``_compute_advantage`` run with ttrl's registered advantage estimator.
For estimators that need self-certainty or token confidence it also asks verl's old-log-prob pass
for them (:mod:`ttrl.adapters.verl.logit_stats`), and only that pass.

This module is imported in verl's processes by the Ray setup hook :func:`ttrl.adapters.verl.setup`
(``ray_kwargs.ray_init.runtime_env.worker_process_setup_hook`` in the generated config).
"""

from __future__ import annotations

import numpy as np
import torch
import transfer_queue as tq
from omegaconf import open_dict
from tensordict import TensorDict
from verl.protocol import DataProto
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from omegaconf import OmegaConf
from verl.workers.utils.padding import response_from_nested, response_to_nested

from .batch import (
    ADVANTAGE_ESTIMATOR,
    apply_train_mask,
    register_advantage_estimator,
    score_batch,
    scored_by_ttrl,
    step_metrics,
    token_arrays,
    verl_fields,
)
from .logit_stats import FIELDS as LOGIT_STATS_FIELDS
from .logit_stats import REQUEST, request_for
from .settings import LOGIT_STATS_HOOK, check_version
from .spec import TRAINER_MODE, build_estimator

HOOK_KEY = "ray_kwargs.ray_init.runtime_env.worker_process_setup_hook"

__all__ = ["TTRLTrainer"]

register_advantage_estimator()


@register_trainer(TRAINER_MODE)
class TTRLTrainer(PPOTrainerSync):
    """``PPOTrainerSync`` whose rewards come from a ttrl estimator over each prompt's responses."""

    def __init__(self, config):
        check_version(required=True)  # in verl's own process too: `ttrl train` may not have started it
        # verl found this class by trainer_mode=ttrl; from here on it must run exactly as "sync" does:
        # PPOTrainer reads trainer_mode to pick the replay buffer, refill and checkpoint behaviour, and
        # treats every mode other than "sync" as asynchronous.
        with open_dict(config):
            config.trainer.v1.trainer_mode = "sync"
        super().__init__(config)
        if config.algorithm.adv_estimator != ADVANTAGE_ESTIMATOR:
            raise ValueError(
                f"trainer.v1.trainer_mode={TRAINER_MODE} needs algorithm.adv_estimator={ADVANTAGE_ESTIMATOR} "
                f"(got {config.algorithm.adv_estimator!r}): verl's other estimators would normalise over the "
                "responses ttrl does not train on."
            )
        self.ttrl_estimator = build_estimator(config.ttrl)
        #: What the old-log-prob pass is asked to add (self-certainty, token confidence), or None.
        self.ttrl_logit_request = request_for(token_arrays(self.ttrl_estimator.stats_needed))
        if self.ttrl_logit_request and OmegaConf.select(config, HOOK_KEY) != LOGIT_STATS_HOOK:
            raise ValueError(
                f"the estimator needs {self.ttrl_logit_request.replace(',', ', ')}, which ttrl computes in verl's "
                f"log-prob pass only with {HOOK_KEY}={LOGIT_STATS_HOOK} (got {OmegaConf.select(config, HOOK_KEY)!r}); "
                "`ttrl train` sets it (see docs/verl.md)."
            )

    def _compute_old_log_prob(self, batch, metrics: dict):
        """verl's own pass; for estimators that need them, asked to add ttrl's logit statistics."""
        if self.ttrl_logit_request is None:
            return super()._compute_old_log_prob(batch, metrics)
        batch.extra_info[REQUEST] = self.ttrl_logit_request
        try:
            return super()._compute_old_log_prob(batch, metrics)
        finally:  # the reference and update passes that follow must not compute them
            batch.extra_info.pop(REQUEST, None)

    def _compute_advantage(self, batch, metrics: dict):
        needed = self.ttrl_estimator.stats_needed
        fields = ["uid", "prompts", "responses", "response_mask", "loss_mask", "reward_model"]
        fields += verl_fields(needed)
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        nested_mask = data["response_mask"]
        for field in set(fields) & set(LOGIT_STATS_FIELDS.values()):
            # whole sequences, as the pass returns them; the response part as verl cuts out its entropy
            data[field] = response_from_nested(data.pop(field), nested_mask)
        prompts = data.pop("prompts").unbind()
        # non-tensor fields come back as a LinkedList, NonTensorStack or array depending on the
        # TransferQueue backend; list(...) reads each of them as one item per sample
        non_tensor = {}
        for name in ("uid", "reward_model"):
            if name in data.keys():
                values = np.empty(len(batch), dtype=object)
                values[:] = list(data[name])
                non_tensor[name] = values
                del data[name]
        padded = data.to_padded_tensor()
        proto = DataProto(batch=padded, non_tensor_batch=non_tensor)
        padding = [bool(tag.get("is_padding", False)) for tag in batch.tags]

        def decode(ids: torch.Tensor) -> str:
            return self.tokenizer.decode(ids.tolist(), skip_special_tokens=True)

        scores = score_batch(
            proto, self.ttrl_estimator, decode, keys=list(batch.keys), padding=padding,
            prompt_of=lambda row: decode(prompts[row]),
        )
        apply_train_mask(proto, scores)
        write_back = {
            "rm_scores": response_to_nested(proto.batch["token_level_scores"], nested_mask),
            "response_mask": response_to_nested(proto.batch["response_mask"], nested_mask),
            "loss_mask": response_to_nested(proto.batch["loss_mask"], nested_mask),
        }
        tq.kv_batch_put(
            keys=batch.keys,
            partition_id=batch.partition_id,
            fields=TensorDict(write_back, batch_size=len(batch)),
        )
        metrics.update(step_metrics(self.ttrl_estimator))
        with scored_by_ttrl():
            return super()._compute_advantage(batch, metrics)
