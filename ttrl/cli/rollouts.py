"""``ttrl rollouts generate``: sample N rollouts per prompt with token statistics (CONTRACT.md files)."""

from __future__ import annotations

from pathlib import Path

import click

from ttrl.core.errors import UserError


def _progress_callback(total: int):
    """A rich progress bar over rollouts showing tokens/s (on stderr), and the callback that advances it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rollouts  {task.fields[tps]:.1f} tokens/s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    task = progress.add_task("generate", total=total, tps=0.0)
    totals = {"tokens": 0, "seconds": 0.0}

    def advance(rollouts: int, tokens: int, seconds: float) -> None:
        totals["tokens"] += tokens
        totals["seconds"] += seconds
        progress.update(task, advance=rollouts, tps=totals["tokens"] / max(totals["seconds"], 1e-9))

    return progress, advance


def make_backend(settings):
    if settings.backend == "vllm":
        from ttrl.rollouts.vllm_backend import VLLMBackend, check_vllm_available

        check_vllm_available()
        return VLLMBackend(settings.model, topk=settings.topk, dtype=settings.dtype)
    from ttrl.rollouts.transformers_backend import TransformersBackend

    return TransformersBackend(settings.model, device=settings.device, dtype=settings.dtype, confidence_k=settings.topk)


def register(cli: click.Group) -> None:
    @cli.group()
    def rollouts() -> None:
        """Generate rollouts with a real model."""

    @rollouts.command()
    @click.option("--model", default="smollm2-135m", show_default=True,
                  help="smollm2-135m (embedded), a local model directory or .gguf file, or a cached Hugging Face id.")
    @click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
                  help="Prompts: TTRL JSON (prompt, answer, id), GSM8K JSONL, or a ttrl rollout/prompt JSONL.")
    @click.option("-n", "n", type=int, required=True, help="Rollouts per prompt.")
    @click.option("--temperature", type=float, default=1.0, show_default=True, help="Sampling temperature (0: greedy).")
    @click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling; statistics stay those of the full distribution.")
    @click.option("--max-new-tokens", type=int, default=256, show_default=True)
    @click.option("--token-stats", is_flag=True, help="Also write per-token arrays (token_entropy, token_self_certainty, token_logprob, token_confidence).")
    @click.option("--output", "output_path", required=True, type=click.Path(path_type=Path), help="Rollout file to write (resumed if it exists).")
    @click.option("--backend", type=click.Choice(["transformers", "vllm"]), default="transformers", show_default=True)
    @click.option("--batch-size", type=int, default=16, show_default=True, help="Sequences per generate call.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--instruction", default=None,
                  help='Appended to every prompt. Default: "Put the final answer in \\boxed{}." Pass "" for none.')
    @click.option("--response-prefix", default=None,
                  help="Text each response starts with (e.g. 'The answer is'); kept in the text, not in the statistics.")
    @click.option("--no-chat-template", is_flag=True, help="Feed prompts as plain text instead of the model's chat template.")
    @click.option("--device", default="cpu", show_default=True, help="transformers backend: cpu, cuda, cuda:1, ...")
    @click.option("--dtype", default=None, help="Model dtype (float32, bfloat16, float16); default float32 (transformers), auto (vllm).")
    @click.option("--threads", type=int, default=None,
                  help="torch CPU threads. On a busy shared CPU, 1 can be several times faster than the default.")
    @click.option("--topk", type=int, default=20, show_default=True, help="k of token confidence (both backends); vllm: top-K log-probs per token for all statistics.")
    @click.option("--overwrite", is_flag=True, help="Start the output file afresh instead of resuming it.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def generate(model, data_path, n, temperature, top_p, max_new_tokens, token_stats, output_path, backend, batch_size,
                 seed, instruction, response_prefix, no_chat_template, device, dtype, threads, topk, overwrite, quiet) -> None:
        """Sample N rollouts per prompt and write a CONTRACT.md rollout file with token statistics."""
        from ttrl.rollouts import DEFAULT_INSTRUCTION, GenerationSettings, load_prompts, run_generation
        from ttrl.rollouts.generation import existing_ids, settings_meta

        settings = GenerationSettings(
            model=model, n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
            batch_size=batch_size, instruction=DEFAULT_INSTRUCTION if instruction is None else (instruction or None),
            chat_template=not no_chat_template, response_prefix=response_prefix or None, token_stats=token_stats, backend=backend, device=device, dtype=dtype,
            topk=topk,
        )
        settings.validate()
        if backend == "vllm":
            # Before reading data or loading anything: a missing GPU should not cost a model load.
            from ttrl.rollouts.vllm_backend import check_vllm_available

            check_vllm_available()
        if dtype is not None and dtype not in {"float32", "bfloat16", "float16"}:
            raise UserError(f"--dtype {dtype!r} is not one of float32, bfloat16, float16.")
        prompts = load_prompts(data_path)
        if not overwrite:
            existing_ids(output_path, settings_meta(settings))  # a settings clash fails before the model loads
        if threads:
            import torch

            torch.set_num_threads(threads)
        engine = make_backend(settings)
        if quiet:
            summary = run_generation(prompts, settings, engine, output_path, overwrite=overwrite)
        else:
            progress, advance = _progress_callback(len(prompts) * n)
            with progress:
                summary = run_generation(prompts, settings, engine, output_path, overwrite=overwrite, on_batch=advance)
        click.echo(
            f"Wrote {summary.written} prompt(s) x {n} rollouts to {output_path}"
            + (f" ({summary.skipped} already there)" if summary.skipped else "")
            + f": {summary.tokens} tokens in {summary.seconds:.1f}s ({summary.tokens_per_second:.1f} tokens/s).",
            err=True,
        )
