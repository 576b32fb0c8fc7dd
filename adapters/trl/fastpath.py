"""The same GRPO step as TRL's GRPOTrainer computes, at a fraction of the cost on CPU.

GRPO repeats every prompt ``num_generations`` times, and TRL runs each copy through the model on its
own: once when generating (the prefill) and once in the loss forward and backward. Its chunked
LM-head kernel, on a device without Triton (any CPU), also projects *every* position of
``prompt + completion`` through the 49k-token LM head, not only the completion tokens whose
log-probs it returns. On CPU those two wastes are most of a step.

This module removes both without changing what is computed:

- :func:`shared_prefix_generate`: each distinct prompt's prefill runs once; its key/value cache is
  indexed out to every row, and ``generate`` continues from it and samples from the same random
  stream (the tests check the completions are token for token the same);
- :func:`completion_logprobs`: the loss forward runs each distinct prompt once (autograd sums the
  rows' gradients into it, the same sum as before) and the completions continue from its cache at
  the same positions; the LM head runs on the completion tokens only, with TRL's own kernel (its
  "compact" mode, the one it uses on GPUs). The log-probs at the sampling temperature, the entropies
  (with gradient, for the entropy bonus), the padding and the position ids (TRL numbers positions 0..
  over the padded row, and so does this) are TRL's; only the floating-point summation order differs.
  ``tests/test_trl_fastpath.py`` checks values and every parameter's gradient against TRL's own path,
  and ``benchmarks/trl_step.py`` times both in one run.

The fast path is taken only where it is known to be equal: a plain (unwrapped) text-only causal LM
without logit soft-capping or scaling, no MoE auxiliary loss, no multimodal inputs, TRL's own
``generate`` path (not vLLM, not continuous batching). Everything else (DDP/DeepSpeed-wrapped
models, PEFT, vision-language models) goes through TRL's own methods. With gradient checkpointing
on, the prompt pass of the loss cannot keep a cache, so only the compact head is used there.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import Any

import torch

#: Config attributes that change the logits after the LM head; TRL's fused forward handles them, this does not.
_SCALING_ATTRS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def _trl_kernel() -> tuple[Any, int]:
    """TRL's chunked log-prob autograd function and the vocabulary tile width its trainer uses."""
    from trl.trainer import utils as trl_utils

    return trl_utils._ChunkedLogProbFunction, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE


def eligible(model: Any) -> bool:
    """Whether :func:`completion_logprobs` computes exactly what TRL's fused forward computes for ``model``."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel) or getattr(model, "peft_config", None):
        return False
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if text is not config:  # vision-language models: their own backbone layout
        return False
    if any(getattr(text, name, None) not in (None, 1, 1.0) for name in _SCALING_ATTRS):
        return False
    if getattr(text, "output_router_logits", False):
        return False
    backbone = getattr(model, "base_model", None)
    return backbone is not None and backbone is not model and model.get_output_embeddings() is not None


def cache_kwarg(backbone: Any) -> str:
    # transformers 5.2x calls the backbone's cache argument ``cache``; earlier releases ``past_key_values``
    params = inspect.signature(backbone.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def shared_prompts(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(first, inverse)``: one row index per distinct (prompt tokens, padding) pair, and each row's pair."""
    key = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], dim=1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    rows = torch.arange(inverse.numel(), device=inverse.device)
    first = torch.full((int(inverse.max()) + 1,), inverse.numel(), dtype=torch.long, device=inverse.device)
    return first.scatter_reduce_(0, inverse, rows, reduce="amin"), inverse  # the first row of each pair


def prefill(backbone: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor, *,
            position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
    """Run ``input_ids`` through ``backbone`` once; its key/value cache indexed out to ``rows``.

    Returns the final hidden states of the rows that ran (not of ``rows``) and the cache, ready for
    ``backbone(..., cache=cache)`` (or ``generate``) to continue every row of ``rows``.
    """
    out = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    cache.batch_select_indices(rows)
    return out.last_hidden_state, cache


def hidden_states(
    backbone: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_len: int,
    *,
    share: bool = True,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Final hidden states at the positions that predict the last ``completion_len`` tokens: ``[B, C, H]``.

    With ``share``, rows with the same prompt (the columns before the completion, tokens and padding)
    run the prompt through ``backbone`` once. ``position_ids`` default to 0.. over the padded row (what
    TRL's training forward uses).
    """
    prompt_len = input_ids.size(1) - completion_len
    if not share or prompt_len < 1:
        out = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state[:, prompt_len - 1 : -1]
    prompt_ids, prompt_mask = input_ids[:, :prompt_len], attention_mask[:, :prompt_len]
    first, inverse = shared_prompts(prompt_ids, prompt_mask)
    prompt_positions = completion_positions = None
    if position_ids is not None:
        prompt_positions, completion_positions = position_ids[first, :prompt_len], position_ids[:, prompt_len:]
    prompt_hidden, cache = prefill(backbone, prompt_ids[first], prompt_mask[first], inverse, position_ids=prompt_positions)
    completion_out = backbone(
        input_ids=input_ids[:, prompt_len:],
        attention_mask=attention_mask,
        position_ids=completion_positions,
        use_cache=True,
        **{cache_kwarg(backbone): cache},
    )
    last_prompt = prompt_hidden[inverse, prompt_len - 1 :]
    return torch.cat([last_prompt, completion_out.last_hidden_state[:, :-1]], dim=1)


def checkpointing(model: Any) -> bool:
    """Whether activation (gradient) checkpointing is on; the prompt pass cannot keep a cache then."""
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):  # transformers 5.2x renamed it
        if hasattr(type(model), name) or name in vars(model):
            return bool(getattr(model, name))
    return False


def completion_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    temperature: float,
    compute_entropy: bool,
    cast_lm_head_to_fp32: bool = False,
    batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per completion token (the last ``logits_to_keep`` columns): log-prob at ``temperature`` and entropy.

    Padding positions (``attention_mask == 0``) get 0, as in TRL. Requires :func:`eligible`.
    """
    kernel, chunk = _trl_kernel()
    backbone = model.base_model
    share = not (model.training and checkpointing(model))
    head = model.get_output_embeddings()
    outputs = ("log_probs", "entropy") if compute_entropy else ("log_probs",)
    batch_size = batch_size or input_ids.size(0)
    logps, entropies = [], []
    for start in range(0, input_ids.size(0), batch_size):
        ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
        hidden = hidden_states(backbone, ids, mask, logits_to_keep, share=share)
        targets = ids[:, -logits_to_keep:]
        valid = mask[:, -logits_to_keep:].bool()
        selected = hidden[valid]
        context = contextlib.nullcontext()
        if cast_lm_head_to_fp32:  # as TRL: the head (already cast to float32 by TRL) outside autocast
            selected = selected.float()
            context = torch.autocast(selected.device.type, enabled=False)
        with context:
            per_token = kernel.apply(selected, head.weight, head.bias, targets[valid], temperature, chunk, None, 1.0, outputs)
        # masked_scatter keeps the result connected to the graph even when no token is valid
        logps.append(per_token[0].new_zeros(valid.shape).masked_scatter(valid, per_token[0]))
        if compute_entropy:
            entropies.append(per_token[1].new_zeros(valid.shape).masked_scatter(valid, per_token[1]))
    return torch.cat(logps, dim=0), (torch.cat(entropies, dim=0) if compute_entropy else None)


def shared_prefix_generate(model: Any, generate: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                           **kwargs: Any) -> Any:
    """``generate(input_ids, attention_mask, **kwargs)`` with each distinct prompt's prefill done once.

    GRPO generates ``num_generations`` completions per prompt as that many identical rows. Here the
    distinct rows' first ``P - 1`` tokens run through the backbone once (with the position ids
    ``generate`` itself derives from the attention mask), their cache is indexed out to every row, and
    ``generate`` continues from it: it prefills only the last prompt token and samples exactly as it
    would have, from the same random stream.
    """
    backbone = model.base_model
    if attention_mask is None or input_ids.size(1) < 2 or any(name in kwargs for name in ("cache", "past_key_values")):
        return generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    first, inverse = shared_prompts(input_ids, attention_mask)
    if first.numel() == input_ids.size(0):  # nothing shared
        return generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    prefix_ids, prefix_mask = input_ids[first, :-1], attention_mask[first, :-1]
    positions = (prefix_mask.long().cumsum(-1) - 1).masked_fill(prefix_mask == 0, 0)
    with torch.no_grad():
        _, cache = prefill(backbone, prefix_ids, prefix_mask, inverse, position_ids=positions)
    return generate(input_ids=input_ids, attention_mask=attention_mask, **{cache_kwarg(backbone): cache}, **kwargs)


def fast_grpo_trainer_class() -> type:
    """GRPOTrainer with :func:`completion_logprobs` where it is equal to TRL's own computation."""
    from trl import GRPOTrainer

    base = GRPOTrainer._get_per_token_logps_and_entropies
    expected = ("model", "input_ids", "attention_mask", "logits_to_keep", "batch_size", "compute_entropy", "compute_aux_loss")
    params = list(inspect.signature(base).parameters)[1:]
    if tuple(params[: len(expected)]) != expected:
        raise RuntimeError(
            "trl's GRPOTrainer._get_per_token_logps_and_entropies has changed its arguments "
            f"({', '.join(params)}); the TRL adapter's fast path supports the trl 1.x signature."
        )

    class FastGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer; per-token log-probs computed by :func:`completion_logprobs` and generation's
        prompt prefill shared (:func:`shared_prefix_generate`) when eligible."""

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, *args, **kwargs):
            model = self.accelerator.unwrap_model(self.model)
            plain = (not self.use_vllm and not getattr(self, "use_transformers_continuous_batching", False)
                     and not multimodal_fields and (images is None or not any(i is not None for i in images)))
            if not plain or not eligible(model) or "generate" in vars(model):
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, *args, **kwargs)
            model.generate = functools.partial(shared_prefix_generate, model, model.generate)
            try:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, *args, **kwargs)
            finally:
                del model.generate

        def _get_per_token_logps_and_entropies(
            self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False,
            compute_aux_loss=False, **extra,
        ):
            if compute_aux_loss or any(v is not None for v in extra.values()) or not eligible(model):
                return base(self, model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                            compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **extra)
            with self.accelerator.autocast():
                logps, entropies = completion_logprobs(
                    model, input_ids, attention_mask, logits_to_keep, temperature=self.temperature,
                    compute_entropy=compute_entropy, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32,
                    batch_size=batch_size,
                )
            return logps, entropies, None

    return FastGRPOTrainer
