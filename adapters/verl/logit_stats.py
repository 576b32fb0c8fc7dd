"""Self-certainty and DeepConf's token confidence from verl's own log-prob pass: a patch of one verl method.

verl 0.9's FSDP engine turns the actor's logits into per-token outputs in
``FSDPEngineWithLMHead.prepare_model_outputs``: it divides the packed micro-batch's logits by the
rollout temperature, computes the entropy with ``self.compute_entropy_from_logits`` and the
log-probs, gathers them across sequence-parallel ranks, drops the packing pad
(``self._gather_and_unpad_packed``) and returns them as nested tensors, which verl's worker writes
into the step's TransferQueue (``entropy``, ``log_probs``). Nothing else of the logits leaves it.

:func:`install` wraps that method. When a micro-batch carries :data:`REQUEST` (ttrl's trainer sets
it for the old-log-prob pass only, and only when the estimator needs these statistics), the call
that computes verl's entropy also computes, from the same scaled logits,
:func:`ttrl.token_stats.certainty_statistics` (self-certainty, and token confidence when asked),
and the results take the entropy's path out: the same gather/unpad, the same nesting, as fields
:data:`FIELDS` beside ``entropy``. Without the request it calls verl's method and nothing else.

It is installed only in runs whose estimator needs these statistics (the Ray setup hook
:func:`ttrl.adapters.verl.setup.register_logit_stats`), and fails loudly, naming what changed, when
verl's method is missing or no longer looks as described above. User documentation: docs/verl.md.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from ttrl.token_stats import DEFAULT_CHUNK_SIZE, DEFAULT_CONFIDENCE_K

#: Non-tensor key of the batch (``KVBatchMeta.extra_info``): the ttrl arrays wanted, comma-separated.
REQUEST = "ttrl_logit_stats"
#: ttrl's per-token array -> the TransferQueue field the patched pass writes (whole sequence, like
#: verl's ``log_probs``; the trainer cuts out the response part as verl does for ``entropy``).
FIELDS = {"token_self_certainty": "ttrl_self_certainty", "token_confidence": "ttrl_confidence"}
#: Token positions per chunk of the kernel: extra memory is about 2 x CHUNK_SIZE x V x 4 bytes.
CHUNK_SIZE = DEFAULT_CHUNK_SIZE
#: DeepConf's k, as on the OpenRLHF and TRL paths.
CONFIDENCE_K = DEFAULT_CONFIDENCE_K

PATCHED = "verl.workers.engine.fsdp.transformer_impl.FSDPEngineWithLMHead.prepare_model_outputs"
_SIGNATURE = ["self", "output", "output_args", "micro_batch", "logits_processor_func"]


def request_for(arrays: frozenset[str]) -> str | None:
    """The :data:`REQUEST` value for the token arrays an estimator needs; ``None`` when none is a logit statistic."""
    wanted = sorted(name for name in arrays if name in FIELDS)
    return ",".join(wanted) or None


def drift(engine_cls: type, base_cls: type) -> list[str]:
    """What no longer holds of verl's engine that the patch relies on (empty: it can be installed)."""
    method = engine_cls.__dict__.get("prepare_model_outputs")
    if method is None:
        return [f"{engine_cls.__name__} no longer defines prepare_model_outputs"]
    problems = []
    method = getattr(method, "__ttrl_original__", method)
    params = list(inspect.signature(method).parameters)
    if params != _SIGNATURE:
        problems.append(f"prepare_model_outputs{tuple(params)} is not prepare_model_outputs{tuple(_SIGNATURE)}")
    names = method.__code__.co_names
    for attribute in ("compute_entropy_from_logits", "_gather_and_unpad_packed"):
        if attribute not in names:
            problems.append(f"prepare_model_outputs no longer calls self.{attribute}")
    if not callable(getattr(base_cls, "_gather_and_unpad_packed", None)):
        problems.append(f"{base_cls.__name__}._gather_and_unpad_packed is gone")
    if "compute_entropy_from_logits" not in base_cls.__init__.__code__.co_names:
        problems.append(f"{base_cls.__name__}.__init__ no longer sets compute_entropy_from_logits")
    return problems


def install() -> None:
    """Wrap verl's ``prepare_model_outputs`` (idempotent); a ``RuntimeError`` naming what changed otherwise."""
    from .settings import check_version

    check_version(required=True)
    try:
        from verl.workers.engine.fsdp.transformer_impl import FSDPEngine, FSDPEngineWithLMHead
    except ImportError as exc:
        raise RuntimeError(
            f"ttrl cannot compute self-certainty in verl's log-prob pass: {PATCHED} cannot be imported ({exc}). "
            "This verl is not the one ttrl's verl adapter was written for (see docs/verl.md)."
        ) from exc
    original = FSDPEngineWithLMHead.__dict__.get("prepare_model_outputs")
    if getattr(original, "__ttrl_original__", None) is not None:
        return
    problems = drift(FSDPEngineWithLMHead, FSDPEngine)
    if problems:
        raise RuntimeError(
            f"ttrl cannot compute self-certainty in verl's log-prob pass: {PATCHED} changed ({'; '.join(problems)}). "
            "This verl is not the one ttrl's verl adapter was written for (see docs/verl.md)."
        )
    FSDPEngineWithLMHead.prepare_model_outputs = _with_logit_stats(original)


def _with_logit_stats(original):
    @functools.wraps(original)
    def prepare_model_outputs(self, output, output_args, micro_batch, logits_processor_func):
        from verl.utils import tensordict_utils as tu

        request = tu.get_non_tensor_data(data=micro_batch, key=REQUEST, default=None)
        if not request:
            return original(self, output, output_args, micro_batch, logits_processor_func)
        return _outputs_with_logit_stats(
            original, self, request.split(","), output, output_args, micro_batch, logits_processor_func
        )

    prepare_model_outputs.__ttrl_original__ = original
    return prepare_model_outputs


def _outputs_with_logit_stats(original, engine, wanted, output, output_args, micro_batch, logits_processor_func) -> dict[str, Any]:
    import torch

    from ttrl.token_stats import certainty_statistics

    unknown = set(wanted) - set(FIELDS)
    if unknown:
        raise ValueError(f"{REQUEST} asks for {sorted(unknown)}; the patched pass computes {sorted(FIELDS)}")
    confidence_k = CONFIDENCE_K if "token_confidence" in wanted else None
    captured: list[dict[str, Any]] = []
    entropy_from_logits = engine.compute_entropy_from_logits

    def entropy_and_certainty(logits, *args, **kwargs):
        captured.append(certainty_statistics(logits.detach(), confidence_k=confidence_k, chunk_size=CHUNK_SIZE))
        return entropy_from_logits(logits, *args, **kwargs)

    engine.compute_entropy_from_logits = entropy_and_certainty
    try:
        model_output = original(engine, output, output_args, micro_batch, logits_processor_func)
    finally:
        engine.compute_entropy_from_logits = entropy_from_logits
    entropy = model_output.get("entropy")
    if len(captured) != 1 or entropy is None or not getattr(entropy, "is_nested", False):
        raise RuntimeError(
            f"ttrl asked verl's log-prob pass for {', '.join(wanted)}, but {PATCHED} did not compute the entropy "
            f"from the logits once through compute_entropy_from_logits (it did {len(captured)} times). It does so "
            "with actor_rollout_ref.model.use_remove_padding: true and use_fused_kernels: false, which ttrl's "
            "checks require; otherwise verl has changed (see docs/verl.md)."
        )
    offsets = entropy.offsets()
    for name in wanted:
        values = engine._gather_and_unpad_packed(captured[0][name], output_args["pad_size"])
        if values.shape[0] != entropy.values().shape[0]:
            raise RuntimeError(
                f"ttrl's {name} has {values.shape[0]} positions where verl's entropy has {entropy.values().shape[0]}: "
                f"{PATCHED} changed how it lays out its outputs (see docs/verl.md)."
            )
        model_output[FIELDS[name]] = torch.nested.nested_tensor_from_jagged(values, offsets)
    return model_output
