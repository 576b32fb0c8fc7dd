"""Driving a backend over a prompt set: batching, seeds, resume, progress and CONTRACT.md output.

Work is cut into batches of whole prompts (``batch_size // n`` prompts of ``n`` rollouts each; a
prompt with more than ``batch_size`` rollouts is split over several ``generate`` calls). A prompt's
line is appended to the output when its batch is done and flushed at once, so a killed run loses at
most the batch in flight; rerunning the same command skips the ids already in the file. Batches are
planned over the whole data set before skipping and each batch's seed is derived from ``--seed`` and
its prompt ids, so a resumed run samples the remaining batches exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttrl.core.data import TOKEN_FIELDS
from ttrl.core.errors import UserError
from ttrl.core.rollout_files import drop_partial_last_line, iter_rollout_file, write_json_line

from .loaders import PromptItem

DEFAULT_INSTRUCTION = "Put the final answer in \\boxed{}."
STATS_DISTRIBUTION = "softmax(logits / temperature) over the full vocabulary, before top-p truncation"
STATS_TOKENS = "generated tokens up to and including the first EOS; padding and post-EOS positions excluded"
#: Settings that must agree between an existing output file and a resumed run.
RESUME_KEYS = ("model", "n", "temperature", "top_p", "max_new_tokens", "instruction", "response_prefix", "seed", "confidence_k")


@dataclass
class GenerationSettings:
    model: str
    n: int
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int = 16
    instruction: str | None = DEFAULT_INSTRUCTION
    chat_template: bool = True
    #: Text the response is made to start with (after the chat template's assistant turn); it is part
    #: of each rollout's ``text`` but not of its statistics, which cover generated tokens only.
    response_prefix: str | None = None
    token_stats: bool = False
    #: Per-token arrays to write even without ``token_stats`` (which writes them all), e.g.
    #: ``("token_confidence",)`` for DeepConf's windowed confidences at a fraction of the file size.
    token_arrays: tuple[str, ...] = ()
    backend: str = "transformers"
    device: str = "cpu"
    dtype: str | None = None
    #: vLLM: top-K log-probs per token; both backends: DeepConf's k of ``token_confidence``.
    topk: int = 20

    def validate(self) -> None:
        if self.n < 1:
            raise UserError(f"-n must be at least 1, got {self.n}.")
        if self.temperature < 0 or not math.isfinite(self.temperature):
            raise UserError(f"--temperature must be >= 0 (0 means greedy), got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1], got {self.top_p}.")
        if self.max_new_tokens < 1:
            raise UserError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}.")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.topk < 1:
            raise UserError(f"--topk must be at least 1, got {self.topk}.")
        unknown = sorted(set(self.token_arrays) - set(TOKEN_FIELDS))
        if unknown:
            raise UserError(f"Unknown per-token array(s) {', '.join(unknown)}; choose from {', '.join(TOKEN_FIELDS)}.")

    def written_arrays(self) -> tuple[str, ...]:
        """The per-token arrays each rollout gets in the output file."""
        return tuple(TOKEN_FIELDS) if self.token_stats else tuple(a for a in TOKEN_FIELDS if a in self.token_arrays)


@dataclass
class Batch:
    index: int
    prompts: list[PromptItem]
    seed: int


@dataclass
class GenerationSummary:
    written: int = 0
    skipped: int = 0
    rollouts: int = 0
    tokens: int = 0
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def plan_batches(prompts: list[PromptItem], settings: GenerationSettings) -> list[Batch]:
    per_batch = max(1, settings.batch_size // settings.n)
    batches = []
    for index, start in enumerate(range(0, len(prompts), per_batch)):
        chunk = prompts[start : start + per_batch]
        key = f"{settings.seed}\0" + "\0".join(p.id for p in chunk)
        batches.append(Batch(index=index, prompts=chunk, seed=zlib.crc32(key.encode("utf-8"))))
    return batches


def rollout_json(sample: Any, arrays: Collection[str] = (), digits: int = 6) -> dict[str, Any]:
    """A rollout object of the rollout-file format from a backend's sample (text, per-token arrays).

    Every statistic the sample carries gets its ``stats`` mean; ``arrays`` names the per-token arrays
    (``token_entropy``, ...) to write as well.
    """
    count = len(sample.logprob)
    stats: dict[str, Any] = {"num_tokens": count}
    item: dict[str, Any] = {"text": sample.text, "stats": stats}
    for array_name, mean_name in TOKEN_FIELDS.items():
        values = getattr(sample, array_name.removeprefix("token_"), None)
        if values is None:
            continue
        stats[mean_name] = round(float(np.mean(values)), digits) if count else None
        if array_name in arrays:
            item[array_name] = [round(float(v), digits) for v in values]
    return item


def existing_ids(path: Path, meta: dict[str, Any]) -> set[str]:
    """Ids already in ``path`` (resume). Raises when that file was made with different settings."""
    if not path.exists() or path.stat().st_size == 0:
        return set()
    drop_partial_last_line(path)
    ids = set()
    for item in iter_rollout_file(path):
        record = getattr(item, "group", None)
        if record is None:
            continue  # a malformed line is regenerated
        old = record.meta
        for key in RESUME_KEYS:
            if key in old and old[key] != meta.get(key):
                raise UserError(
                    f"{item.source}: this output file was generated with {key}={old[key]!r}, but this run has "
                    f"{key}={meta.get(key)!r}. Resuming would mix settings in one file: pass a new --output, "
                    "or --overwrite to start again."
                )
        ids.add(record.id)
    return ids


def settings_meta(settings: GenerationSettings) -> dict[str, Any]:
    """The sampling settings recorded in every output line's ``meta`` (and compared on resume)."""
    return {
        "model": settings.model,
        "n": settings.n,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_new_tokens": settings.max_new_tokens,
        "seed": settings.seed,
        "instruction": settings.instruction,
        "chat_template": settings.chat_template,
        "confidence_k": settings.topk,
        **({"response_prefix": settings.response_prefix} if settings.response_prefix else {}),
    }


def run_generation(
    prompts: list[PromptItem],
    settings: GenerationSettings,
    backend: Any,
    output: Path,
    *,
    overwrite: bool = False,
    on_batch: Callable[[int, int, float], None] | None = None,
) -> GenerationSummary:
    """Generate ``settings.n`` rollouts per prompt and append one CONTRACT.md line per prompt to ``output``.

    ``on_batch(rollouts, tokens, seconds)`` is called after every batch (progress reporting).
    """
    settings.validate()
    meta = {
        **settings_meta(settings),
        **backend.describe(),
        "stats_source": backend.stats_source if hasattr(backend, "stats_source") else "logits",
        "stats_temperature": settings.temperature if settings.temperature > 0 else 1.0,
        "stats_distribution": STATS_DISTRIBUTION,
        "stats_tokens": STATS_TOKENS,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    if overwrite and output.exists():
        output.unlink()
    done = existing_ids(output, meta)
    summary = GenerationSummary(meta=meta)
    batches = plan_batches(prompts, settings)
    with output.open("a", encoding="utf-8") as handle:
        for batch in batches:
            todo = [p for p in batch.prompts if p.id not in done]
            summary.skipped += len(batch.prompts) - len(todo)
            if not todo:
                continue
            start = time.perf_counter()
            lines, tokens = _generate_batch(todo, settings, backend, batch.seed, meta)
            for line in lines:
                write_json_line(handle, line)
            handle.flush()
            elapsed = time.perf_counter() - start
            summary.written += len(lines)
            summary.rollouts += len(todo) * settings.n
            summary.tokens += tokens
            summary.seconds += elapsed
            if on_batch is not None:
                on_batch(len(todo) * settings.n, tokens, elapsed)
    return summary


def _slices(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _generate_batch(todo: list[PromptItem], settings: GenerationSettings, backend: Any, seed: int, meta: dict[str, Any]) -> tuple[list[dict], int]:
    prefix = settings.response_prefix or ""
    texts = [backend.format_prompt(p.prompt, settings.instruction, settings.chat_template) + prefix for p in todo]
    if settings.n <= settings.batch_size:
        calls = [[t for t in texts for _ in range(settings.n)]]
    else:  # one prompt per batch, its rollouts split over several calls
        calls = [[texts[0]] * (b - a) for a, b in _slices(settings.n, settings.batch_size)]
    samples = []
    for call_index, call in enumerate(calls):
        samples.extend(backend.generate(
            call,
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_new_tokens=settings.max_new_tokens,
            seed=(seed + call_index) % 2**32,
        ))
    if prefix:
        for sample in samples:
            sample.text = prefix + sample.text
    lines = []
    tokens = 0
    arrays = settings.written_arrays()
    for i, prompt in enumerate(todo):
        group = samples[i * settings.n : (i + 1) * settings.n]
        tokens += sum(len(s.logprob) for s in group)
        line: dict[str, Any] = {"id": prompt.id, "prompt": prompt.prompt, "task": prompt.task}
        if prompt.reference is not None:
            line["reference"] = prompt.reference
        line["rollouts"] = [rollout_json(s, arrays) for s in group]
        line["meta"] = {**meta, **prompt.meta}
        lines.append(line)
    return lines, tokens


