"""Per-token statistics of the sampling distribution from a policy's logits (CONTRACT.md definitions).

The logits must already be divided by the sampling temperature (OpenRLHF's ``Actor.forward`` does this
with the rollout temperature). Exact over the full vocabulary, in nats:

    H_t    = −Σ_j p_t(j) log p_t(j)                              (entropy)
    SC_t   = KL(U ‖ p_t) = −log|V| − (1/|V|) Σ_j log p_t(j)
           = logsumexp(z_t) − mean_j z_t(j) − log|V|              (self-certainty, INTUITOR)

Entropy is summed from ``log_softmax`` terms, not as ``logsumexp(z) − Σ p z``: with logits of
magnitude ~30 and a 50k vocabulary that difference loses ~1e-3 nats in float32, the terms ~3e-5.
Rows are processed in chunks so the extra memory is one chunk's softmax, not a second copy of the
``[batch, tokens, vocab]`` logits.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def token_stats_from_logits(logits: torch.Tensor, chunk_tokens: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """``(entropy, self_certainty)``, each shaped like ``logits`` without the vocabulary dimension."""
    shape = logits.shape[:-1]
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    entropy = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    certainty = torch.empty_like(entropy)
    log_vocab = math.log(vocab)
    for start in range(0, flat.shape[0], chunk_tokens):
        z = flat[start : start + chunk_tokens].float()
        log_p = torch.log_softmax(z, dim=-1)
        entropy[start : start + chunk_tokens] = -(log_p.exp() * log_p).sum(dim=-1)
        certainty[start : start + chunk_tokens] = torch.logsumexp(z, dim=-1) - z.mean(dim=-1) - log_vocab
    return entropy.reshape(shape), certainty.reshape(shape)
