"""The ``transformers`` backend: batched sampling with exact token statistics, CPU or GPU.

Statistics are recorded inside ``generate`` by a logits processor that runs *before* the temperature
and top-p warpers, so it sees the model's raw logits ``z`` of every step and applies
:func:`ttrl.token_stats.distribution_stats` to ``softmax(z / T)``: the sampling distribution of
CONTRACT.md, over the full vocabulary. With ``--top-p < 1`` tokens are drawn from the top-p
truncation of that distribution, but the statistics stay those of the untruncated one (truncation
would make self-certainty infinite); ``meta.stats_distribution`` says so. DeepConf's token confidence
over the top ``confidence_k`` tokens of that distribution is exact here. Memory is O(batch x V) per
step: nothing of size steps x V is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ttrl.token_stats import DEFAULT_CONFIDENCE_K, distribution_stats


@dataclass
class SampledRollout:
    """One generated response: its text, token ids (EOS included when it stopped) and per-token stats."""

    text: str
    token_ids: list[int]
    entropy: np.ndarray
    self_certainty: np.ndarray
    logprob: np.ndarray
    confidence: np.ndarray | None = None


def format_prompt(tokenizer: Any, prompt: str, instruction: str | None, chat_template: bool) -> str:
    """The model input for a prompt: the prompt and instruction as one user turn of the chat template
    (when the tokenizer has one and ``chat_template`` is set), ending where the assistant's reply begins."""
    content = f"{prompt}\n\n{instruction}" if instruction else prompt
    if chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)
    return content


def _stats_recorder_class():
    from transformers import LogitsProcessor

    class StatsRecorder(LogitsProcessor):
        """Record entropy, self-certainty and confidence of ``softmax(raw logits / T)`` at every step; the
        log-prob of the token sampled at step t is read at step t + 1 (or by :meth:`finish`) once it is known."""

        def __init__(self, temperature: float, confidence_k: int):
            self.temperature = temperature
            self.confidence_k = confidence_k
            self.entropy: list[Any] = []
            self.self_certainty: list[Any] = []
            self.confidence: list[Any] = []
            self.logprob: list[Any] = []
            self._previous: tuple[Any, Any] | None = None

        def _close_previous(self, tokens):
            if self._previous is not None:
                logits, log_normalizer = self._previous
                picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).float() / self.temperature
                self.logprob.append(picked - log_normalizer)
                self._previous = None

        def __call__(self, input_ids, scores):
            self._close_previous(input_ids[:, -1])
            stats = distribution_stats(scores, temperature=self.temperature, confidence_k=self.confidence_k)
            self.entropy.append(stats.entropy)
            self.self_certainty.append(stats.self_certainty)
            self.confidence.append(stats.confidence)
            # Later warpers return new tensors, but a copy keeps this independent of their internals.
            self._previous = (scores.detach().clone(), stats.log_normalizer)
            return scores

        def finish(self, sequences):
            self._close_previous(sequences[:, -1])

    return StatsRecorder


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_name: str, *, device: str = "cpu", dtype: str | None = None, confidence_k: int = DEFAULT_CONFIDENCE_K):
        import torch

        from ttrl.models import load_causal_lm

        torch_dtype = getattr(torch, dtype) if dtype else None
        self.model, self.tokenizer, self.ref = load_causal_lm(model_name, device=device, dtype=torch_dtype)
        self.tokenizer.padding_side = "left"
        self.device = device
        self.confidence_k = confidence_k
        self.dtype = str(self.model.dtype).replace("torch.", "")
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]

    def describe(self) -> dict[str, Any]:
        from ttrl.models import EMBEDDED_MODELS

        # An embedded model's directory is inside site-packages: its file name identifies it well enough.
        where = {} if self.ref.name in EMBEDDED_MODELS else {"model_path": self.ref.path}
        return {
            "backend": self.name,
            **where,
            **({"gguf_file": self.ref.gguf_file} if self.ref.gguf_file else {}),
            "device": self.device,
            "dtype": self.dtype,
            "confidence_k": self.confidence_k,
        }

    def format_prompt(self, prompt: str, instruction: str | None, chat_template: bool) -> str:
        return format_prompt(self.tokenizer, prompt, instruction, chat_template)

    def generate(self, texts: list[str], *, temperature: float, top_p: float, max_new_tokens: int, seed: int) -> list[SampledRollout]:
        """Sample one response per entry of ``texts`` (repeat a prompt to get several)."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        greedy = temperature == 0
        stats_temperature = 1.0 if greedy else float(temperature)
        recorder = _stats_recorder_class()(stats_temperature, self.confidence_k)
        processors = [recorder]
        if not greedy:
            # Passed here rather than through the config so that the recorder runs before them.
            if stats_temperature != 1.0:
                processors.append(TemperatureLogitsWarper(stats_temperature))
            if top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p))
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
        )
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        prompt_length = batch["input_ids"].shape[1]
        torch.manual_seed(seed)
        with torch.inference_mode():
            sequences = self.model.generate(**batch, generation_config=config, logits_processor=LogitsProcessorList(processors))
        recorder.finish(sequences)
        generated = sequences[:, prompt_length:]
        steps = generated.shape[1]
        if steps == 0:
            return [SampledRollout("", [], np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)) for _ in texts]
        entropy = torch.stack(recorder.entropy, dim=1).double().cpu().numpy()
        self_certainty = torch.stack(recorder.self_certainty, dim=1).double().cpu().numpy()
        logprob = torch.stack(recorder.logprob, dim=1).double().cpu().numpy()
        confidence = torch.stack(recorder.confidence, dim=1).double().cpu().numpy()
        lengths = response_lengths(generated.cpu().numpy(), self.eos_ids)
        out = []
        for i, length in enumerate(lengths):
            ids = generated[i, :length].tolist()
            text_ids = ids[:-1] if ids and ids[-1] in self.eos_ids else ids
            out.append(SampledRollout(
                text=self.tokenizer.decode(text_ids, skip_special_tokens=True),
                token_ids=ids,
                entropy=entropy[i, :length],
                self_certainty=self_certainty[i, :length],
                logprob=logprob[i, :length],
                confidence=confidence[i, :length],
            ))
        return out


def response_lengths(generated: np.ndarray, eos_ids: list[int]) -> list[int]:
    """Tokens per response: up to and including the first EOS, else all of them (``max_new_tokens``)."""
    is_eos = np.isin(generated, eos_ids)
    lengths = []
    for row in is_eos:
        hits = np.flatnonzero(row)
        lengths.append(int(hits[0]) + 1 if hits.size else row.shape[0])
    return lengths
