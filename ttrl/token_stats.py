"""Per-token statistics of a sampling distribution, computed from logits chunk by chunk.

For logits ``z`` of one position and a sampling temperature ``T``, the sampling distribution is
``p = softmax(z / T)`` over the full vocabulary ``V`` (docs/formats.md). In nats:

* entropy ``H = -sum_j p_j log p_j`` with ``log p = x - logZ``, ``x = z / T``, ``logZ = logsumexp(x)``;
* self-certainty ``KL(U || p) = -log|V| - (1/|V|) sum_j log p_j = logZ - mean_j x_j - log|V|``
  (Kang et al. 2025, "Scalable Best-of-N Selection via Self-Certainty"; INTUITOR, Zhao et al. 2025);
* log-prob of the sampled token ``k``: ``log p_k = x_k - logZ``;
* confidence (DeepConf; Fu et al. 2025, "Deep Think with Confidence") over the ``k`` most likely
  tokens ``top_k``: ``C = -(1/k) sum_{j in top_k} log p_j = logZ - (1/k) sum_{j in top_k} x_j``.

Logits may be ``[T, V]`` or ``[B, T, V]`` in any floating dtype (bf16/fp16 included). Rows are
processed ``chunk_size`` at a time in float32, so the extra memory is O(chunk_size x V) rather than a
float32 copy of the whole tensor. This module needs the ``torch`` extra and is never imported by the
core package.

:func:`topk_token_statistics` gives the same statistics when only the top-K log-probs of each step are
known (vLLM), completing the unseen tail as explained there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

DEFAULT_CHUNK_SIZE = 256
#: DeepConf's k: its code asks vLLM for the top 20 log-probs of every token.
DEFAULT_CONFIDENCE_K = 20


@dataclass
class TokenStats:
    """Per-position statistics, shaped like the logits without the vocabulary axis.

    Positions outside the mask are 0. ``logprob`` is ``None`` when no sampled tokens were given,
    ``confidence`` when no ``confidence_k`` was.
    """

    entropy: Any
    self_certainty: Any
    logprob: Any | None
    mask: Any
    confidence: Any | None = None

    def arrays(self) -> dict[str, Any]:
        """The computed statistics keyed by their rollout-file names (``token_entropy``, ...)."""
        names = ("entropy", "self_certainty", "logprob", "confidence")
        return {f"token_{n}": getattr(self, n) for n in names if getattr(self, n) is not None}

    def means(self) -> dict[str, Any]:
        """Masked means over the last (time) axis: ``num_tokens`` and ``mean_*`` as in docs/formats.md.

        A sequence with no tokens gets ``nan`` means.
        """
        import torch

        weights = self.mask.to(torch.float64)
        count = weights.sum(-1)
        out = {"num_tokens": count.to(torch.long)}
        for name in ("entropy", "self_certainty", "logprob", "confidence"):
            values = getattr(self, name)
            if values is None:
                continue
            total = (values.to(torch.float64) * weights).sum(-1)
            out[f"mean_{name}"] = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))
        return out


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    return temperature


def _check_confidence_k(k: int | None) -> int | None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"confidence_k must be a positive integer or None, got {k!r}")
    return k


class DistributionStats(NamedTuple):
    """One block's statistics, each ``[N]``; ``logprob`` / ``confidence`` are ``None`` unless asked for."""

    entropy: Any
    self_certainty: Any
    logprob: Any | None
    log_normalizer: Any
    confidence: Any | None


def distribution_stats(
    logits: Any, *, temperature: float = 1.0, tokens: Any | None = None, confidence_k: int | None = None
) -> DistributionStats:
    """Statistics of ``softmax(logits / temperature)`` for a small ``[N, V]`` block, in float32.

    This is the per-chunk kernel of :func:`token_statistics`; callers holding one generation step's
    ``[B, V]`` logits use it directly. ``confidence_k`` asks for DeepConf's confidence over the top
    ``min(k, V)`` tokens.
    """
    import torch

    temperature = _check_temperature(temperature)
    confidence_k = _check_confidence_k(confidence_k)
    x = logits.to(torch.float32)
    if temperature != 1.0:
        x = x / temperature
    log_normalizer = torch.logsumexp(x, dim=-1)
    # H is summed from its non-negative terms -p_j log p_j. The shorter form logZ - sum_j p_j x_j
    # subtracts two large numbers: with logits of magnitude ~30 over a 49k vocabulary it loses ~1e-3
    # nats in float32, the terms ~1e-7. Two [N, V] buffers (log p, then p log p in place).
    log_p = x - log_normalizer.unsqueeze(-1)
    terms = log_p.exp()
    terms.mul_(log_p)
    entropy = (-terms.sum(-1)).clamp(min=0.0)
    del terms, log_p
    self_certainty = _self_certainty(x, log_normalizer)
    logprob = None
    if tokens is not None:
        picked = x.gather(-1, tokens.to(torch.long).unsqueeze(-1)).squeeze(-1)
        logprob = picked - log_normalizer
    confidence = None if confidence_k is None else _confidence(x, log_normalizer, confidence_k)
    return DistributionStats(entropy, self_certainty, logprob, log_normalizer, confidence)


def _self_certainty(x: Any, log_normalizer: Any) -> Any:
    # KL(U||p) = -log V - (1/V) sum_j log p_j = logZ - mean_j x_j - log V
    return (log_normalizer - x.mean(-1) - math.log(x.shape[-1])).clamp(min=0.0)


def _confidence(x: Any, log_normalizer: Any, k: int) -> Any:
    # -(1/k) sum_top log p_j = logZ - mean_top x_j (topk of x, as log p is x shifted by logZ)
    top = x.topk(min(k, x.shape[-1]), dim=-1, sorted=False).values
    return (log_normalizer - top.mean(-1)).clamp(min=0.0)


def certainty_statistics(
    scaled_logits: Any, *, confidence_k: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, Any]:
    """Self-certainty (and DeepConf's confidence with ``confidence_k``) of ``softmax(scaled_logits)``
    for ``[N, V]`` logits a trainer already divided by its sampling temperature.

    For trainers whose own pass computes entropy and log-probs from those logits and lacks only these
    two: no entropy is computed here. ``chunk_size`` rows at a time in float32, so the extra memory is
    one chunk's working set (its float32 copy and ``logsumexp``'s temporary, about 2 x chunk x V x 4
    bytes; none for float32 input beyond the temporary), never a copy of all ``N`` rows. Returns float32
    ``[N]`` tensors keyed ``token_self_certainty`` (and ``token_confidence``), on the logits' device.
    """
    import torch

    confidence_k = _check_confidence_k(confidence_k)
    if scaled_logits.dim() != 2 or not scaled_logits.is_floating_point():
        raise ValueError(f"scaled_logits must be floating point [N, V], got {scaled_logits.dtype} {tuple(scaled_logits.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    rows = scaled_logits.shape[0]
    out = {"token_self_certainty": torch.empty(rows, dtype=torch.float32, device=scaled_logits.device)}
    if confidence_k is not None:
        out["token_confidence"] = torch.empty_like(out["token_self_certainty"])
    with torch.no_grad():
        for start in range(0, rows, chunk_size):
            x = scaled_logits[start : start + chunk_size].to(torch.float32)
            log_normalizer = torch.logsumexp(x, dim=-1)
            out["token_self_certainty"][start : start + chunk_size] = _self_certainty(x, log_normalizer)
            if confidence_k is not None:
                out["token_confidence"][start : start + chunk_size] = _confidence(x, log_normalizer, confidence_k)
            del x, log_normalizer
    return out


def token_statistics(
    logits: Any,
    *,
    tokens: Any | None = None,
    mask: Any | None = None,
    temperature: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    confidence_k: int | None = DEFAULT_CONFIDENCE_K,
) -> TokenStats:
    """Entropy, self-certainty, sampled-token log-prob and confidence for logits ``[T, V]`` or ``[B, T, V]``.

    ``tokens`` (``[T]`` / ``[B, T]``) are the sampled ids at each position; ``mask`` (same shape,
    bool or 0/1) selects the positions that count (generated tokens, not padding or post-EOS).
    ``confidence_k`` is DeepConf's k (``None``: no confidence). Chunks whose rows are all masked out
    are skipped.
    """
    import torch

    temperature = _check_temperature(temperature)
    confidence_k = _check_confidence_k(confidence_k)
    if logits.dim() not in (2, 3):
        raise ValueError(f"logits must be [T, V] or [B, T, V], got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    lead = tuple(logits.shape[:-1])
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)  # a view for contiguous logits: no copy
    rows = flat.shape[0]
    if mask is None:
        flat_mask = torch.ones(rows, dtype=torch.bool, device=logits.device)
    else:
        if tuple(mask.shape) != lead:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match logits {lead}")
        flat_mask = mask.reshape(-1).to(device=logits.device, dtype=torch.bool)
    flat_tokens = None
    if tokens is not None:
        if tuple(tokens.shape) != lead:
            raise ValueError(f"tokens shape {tuple(tokens.shape)} does not match logits {lead}")
        flat_tokens = tokens.reshape(-1).to(device=logits.device, dtype=torch.long)

    entropy = torch.zeros(rows, dtype=torch.float32, device=logits.device)
    self_certainty = torch.zeros_like(entropy)
    logprob = torch.zeros_like(entropy) if flat_tokens is not None else None
    confidence = torch.zeros_like(entropy) if confidence_k is not None else None
    for start in range(0, rows, chunk_size):
        stop = min(start + chunk_size, rows)
        keep = flat_mask[start:stop]
        if not bool(keep.any()):
            continue
        block = distribution_stats(
            flat[start:stop],
            temperature=temperature,
            tokens=None if flat_tokens is None else flat_tokens[start:stop],
            confidence_k=confidence_k,
        )
        entropy[start:stop] = torch.where(keep, block.entropy, 0.0)
        self_certainty[start:stop] = torch.where(keep, block.self_certainty, 0.0)
        if logprob is not None:
            logprob[start:stop] = torch.where(keep, block.logprob, 0.0)
        if confidence is not None:
            confidence[start:stop] = torch.where(keep, block.confidence, 0.0)
    return TokenStats(
        entropy=entropy.reshape(lead),
        self_certainty=self_certainty.reshape(lead),
        logprob=None if logprob is None else logprob.reshape(lead),
        mask=flat_mask.reshape(lead),
        confidence=None if confidence is None else confidence.reshape(lead),
    )


def reference_token_statistics(
    logits: Any, *, tokens: Any | None = None, temperature: float = 1.0, confidence_k: int | None = DEFAULT_CONFIDENCE_K
) -> TokenStats:
    """The naive float64 implementation (full softmax of the whole tensor): tests' and benchmarks' yardstick."""
    import torch

    x = logits.to(torch.float64) / _check_temperature(temperature)
    logp = torch.log_softmax(x, dim=-1)
    p = logp.exp()
    entropy = -(p * logp).sum(-1)
    self_certainty = -math.log(x.shape[-1]) - logp.mean(-1)
    logprob = None if tokens is None else logp.gather(-1, tokens.to(torch.long).unsqueeze(-1)).squeeze(-1)
    confidence = None
    if _check_confidence_k(confidence_k) is not None:
        confidence = -logp.topk(min(confidence_k, x.shape[-1]), dim=-1).values.mean(-1)
    return TokenStats(entropy, self_certainty, logprob, torch.ones(x.shape[:-1], dtype=torch.bool), confidence)


@dataclass(frozen=True)
class TopKStats:
    """Statistics of one position from its top-K log-probs, with bounds from the unseen tail."""

    entropy: float
    entropy_bounds: tuple[float, float]
    self_certainty: float
    tail_mass: float
    #: DeepConf's confidence over the ``confidence_k`` largest given log-probs (exact: no tail enters it).
    confidence: float | None = None


def topk_token_statistics(topk_logprobs: Any, vocab_size: int, confidence_k: int | None = None) -> TopKStats:
    """Entropy and self-certainty of one position when only its K largest log-probs are known.

    ``topk_logprobs`` are log-probs of the sampling distribution (already normalised over the full
    vocabulary, as vLLM returns them). The remaining ``R = 1 - sum_k p_k`` of probability mass lies
    on the other ``V - K`` tokens, each at most ``p_min`` (the smallest top-K probability). The tail
    is completed uniformly, ``R / (V - K)`` per token: the maximum-entropy completion. Then

    * ``H ~ H_top + R log((V - K) / R)``, an upper bound; the lower bound is
      ``H_top - R log p_min`` (the tail packed into tokens of probability ``p_min``);
    * ``KL(U||p) ~ -log V - (1/V) [sum_top log p_k + (V - K) log(R / (V - K))]``, a lower bound
      (Jensen: a uniform tail maximises the tail's sum of log-probs; the true value can be larger).

    With ``R = 0`` (numerically) the top-K already hold all the mass and the tail terms vanish,
    except self-certainty, whose tail log-probs are then taken at the float64 floor.

    The confidence ``-(1/k) sum_top log p_k`` needs no completion: it is exact as long as the ``k``
    largest log-probs are among those given (vLLM gives the top K plus the sampled token, so the
    largest ``k <= K`` of them are the top ``k``).
    """
    import numpy as np

    logp = np.asarray(topk_logprobs, dtype=np.float64).reshape(-1)
    logp = logp[np.isfinite(logp)]
    k = logp.size
    if k == 0 or vocab_size <= 0 or k > vocab_size:
        raise ValueError(f"need 1..vocab_size top-k log-probs, got {k} for vocab_size={vocab_size}")
    p = np.exp(logp)
    h_top = float(-(p * logp).sum())
    tail = max(0.0, 1.0 - float(p.sum()))
    rest = vocab_size - k
    if rest == 0 or tail <= 0.0:
        entropy = h_top
        low = h_top
        tail_logp_sum = 0.0 if rest == 0 else rest * math.log(np.finfo(np.float64).tiny)
    else:
        entropy = h_top + tail * math.log(rest / tail)
        low = h_top - tail * float(logp.min())
        tail_logp_sum = rest * math.log(tail / rest)
    self_certainty = -math.log(vocab_size) - (float(logp.sum()) + tail_logp_sum) / vocab_size
    confidence = None
    if _check_confidence_k(confidence_k) is not None:
        confidence = -float(np.sort(logp)[::-1][:confidence_k].mean())
    return TopKStats(
        entropy=entropy, entropy_bounds=(low, entropy), self_certainty=max(0.0, self_certainty), tail_mass=tail,
        confidence=confidence,
    )


def response_token_stats(
    logits: Any,
    response_mask: Any,
    *,
    tokens: Any | None = None,
    temperature: float,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **kernel_options: Any,
) -> list[dict[str, Any]]:
    """Per response, the statistics of its generated tokens: what a trainer hands to the group layer.

    ``logits`` is ``[B, T, V]`` as the policy's forward returned it (any dtype, any view: it is never
    reshaped or converted as a whole); ``response_mask`` ``[B, T]`` marks the positions whose
    statistics are wanted (position t's logits predict the response token at t); ``tokens``
    ``[B, T]`` are the sampled ids there (for the log-probs). ``temperature`` is the sampling
    temperature from the run's settings: pass raw logits, not logits a trainer already scaled.

    Only each row's response span is computed, ``chunk_size`` positions at a time, so the extra
    memory is one chunk's float32 working set whatever B and T are. Returns, per row, one float64
    numpy array over its masked positions for every ``token_*`` field the kernel computes
    (:meth:`TokenStats.arrays`; token confidence with ``confidence_k``, DeepConf's 20 by default).
    """
    import numpy as np
    import torch

    from ttrl.core.data import TOKEN_FIELDS

    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got shape {tuple(logits.shape)}")
    if tuple(response_mask.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"response_mask shape {tuple(response_mask.shape)} does not match logits {tuple(logits.shape[:2])}")
    if tokens is not None and tuple(tokens.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"tokens shape {tuple(tokens.shape)} does not match logits {tuple(logits.shape[:2])}")
    mask = response_mask.to(device="cpu", dtype=torch.bool)
    names = [name for name in TOKEN_FIELDS if name != "token_logprob" or tokens is not None]
    out: list[dict[str, Any]] = []
    for row in range(logits.shape[0]):
        positions = torch.nonzero(mask[row]).flatten()
        pieces: dict[str, list[Any]] = {name: [] for name in names}
        if len(positions):
            first, last = int(positions[0]), int(positions[-1]) + 1
            for start in range(first, last, chunk_size):
                stop = min(start + chunk_size, last)
                keep = mask[row, start:stop]
                if not bool(keep.any()):
                    continue
                stats = token_statistics(
                    logits[row, start:stop],
                    tokens=None if tokens is None else tokens[row, start:stop],
                    temperature=temperature,
                    chunk_size=chunk_size,
                    **kernel_options,
                )
                device_keep = keep.to(logits.device)
                for name, values in stats.arrays().items():
                    if name in pieces:
                        pieces[name].append(values[device_keep].to(torch.float64).cpu())
        arrays = {}
        for name in names:
            if pieces[name]:
                arrays[name] = torch.cat(pieces[name]).numpy()
            elif not len(positions):
                arrays[name] = np.zeros(0, dtype=np.float64)
        out.append(arrays)
    return out
