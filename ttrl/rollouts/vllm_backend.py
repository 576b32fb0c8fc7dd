"""The ``vllm`` backend (optional, GPU): same output format, statistics from top-K log-probs.

vLLM returns, per generated token, the log-probs of the K most likely tokens plus the sampled one,
not the full distribution. Entropy and self-certainty are completed from them by
:func:`ttrl.token_stats.topk_token_statistics` (uniform tail; entropy is then an upper bound and
self-certainty a lower bound, see there), the sampled token's log-prob is exact, and the output's
``meta.stats_source`` is ``"topk:K"``. DeepConf's token confidence over the top ``k = K`` tokens is
exact too (``meta.confidence_k`` is K): it reads only the K largest log-probs. The engine is asked for ``logprobs_mode="processed_logprobs"``
so that the log-probs are those of the temperature-scaled distribution (vLLM >= 0.10.2); with
``--top-p < 1`` vLLM's processed log-probs are of the truncated distribution, so statistics stay
exact only for ``--top-p 1``.

Nothing here is imported unless ``--backend vllm`` is asked for; :func:`check_vllm_available` fails
early, before any model is loaded, when vLLM or a CUDA GPU is missing.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from ttrl.core.errors import UserError

from .transformers_backend import SampledRollout, format_prompt


def check_vllm_available() -> None:
    """Raise :class:`UserError` unless vLLM is installed and a CUDA GPU is visible."""
    if importlib.util.find_spec("vllm") is None:
        raise UserError(
            "--backend vllm needs the vllm package, which is not installed. Install it on a machine with an "
            "NVIDIA GPU (pip install vllm), or use --backend transformers (the default; CPU or GPU)."
        )
    try:
        import torch
    except ImportError:
        raise UserError("--backend vllm needs torch with CUDA: pip install 'ttrl[torch]' vllm.") from None
    if not torch.cuda.is_available():
        raise UserError(
            "--backend vllm needs a CUDA GPU, and torch sees none on this machine. "
            "Use --backend transformers (the default), which runs on CPU."
        )


def stats_from_vllm_logprobs(
    sampled: list[int], logprobs: list[dict[int, Any]], vocab_size: int, confidence_k: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-token (entropy, self-certainty, logprob, confidence) from vLLM's per-position
    ``{token_id: Logprob}`` dicts (the top K plus the sampled token). Confidence is ``None`` without
    ``confidence_k``."""
    from ttrl.token_stats import topk_token_statistics

    entropy, certainty, logprob, confidence = [], [], [], []
    for token, position in zip(sampled, logprobs, strict=True):
        values = {tid: float(getattr(lp, "logprob", lp)) for tid, lp in position.items()}
        stats = topk_token_statistics(list(values.values()), vocab_size, confidence_k=confidence_k)
        entropy.append(stats.entropy)
        certainty.append(stats.self_certainty)
        logprob.append(values[token])
        confidence.append(stats.confidence)
    conf = np.asarray(confidence, dtype=np.float64) if confidence_k is not None else None
    return np.asarray(entropy), np.asarray(certainty), np.asarray(logprob), conf


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_name: str, *, topk: int = 20, dtype: str | None = None):
        check_vllm_available()
        from vllm import LLM

        from ttrl.models import resolve_model

        self.ref = resolve_model(model_name)
        model_path = self.ref.path if not self.ref.gguf_file else f"{self.ref.path}/{self.ref.gguf_file}"
        self.topk = topk
        self.stats_source = f"topk:{topk}"
        self.llm = LLM(model=model_path, dtype=dtype or "auto", logprobs_mode="processed_logprobs", max_logprobs=topk)
        self.tokenizer = self.llm.get_tokenizer()
        self.vocab_size = len(self.tokenizer)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": "cuda",
            "dtype": str(self.llm.llm_engine.model_config.dtype),
            "confidence_k": self.topk,
        }

    def format_prompt(self, prompt: str, instruction: str | None, chat_template: bool) -> str:
        return format_prompt(self.tokenizer, prompt, instruction, chat_template)

    def generate(self, texts: list[str], *, temperature: float, top_p: float, max_new_tokens: int, seed: int) -> list[SampledRollout]:
        from vllm import SamplingParams

        params = [
            SamplingParams(n=1, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, logprobs=self.topk, seed=seed + i)
            for i in range(len(texts))
        ]
        out = []
        for request in self.llm.generate(texts, params, use_tqdm=False):
            completion = request.outputs[0]
            ids = list(completion.token_ids)
            entropy, certainty, logprob, confidence = stats_from_vllm_logprobs(
                ids, completion.logprobs or [], self.vocab_size, confidence_k=self.topk
            )
            out.append(SampledRollout(completion.text, ids, entropy, certainty, logprob, confidence))
        return out
