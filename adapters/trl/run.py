"""``ttrl train`` with ``trainer: trl``: validate, build TRL's GRPOTrainer, train, evaluate, summarise.

Everything that can be wrong with the run config is checked (:func:`ttrl.adapters.trl.settings.prepare`)
before the model is loaded. The summary (``output_dir/summary.json``) holds, per step, the estimator's
rewards and the reward-quality metrics against the hidden reference, and greedy pass@1 on held-out
problems before and after training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ttrl.core.config import RunConfig
from ttrl.core.errors import UserError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.plugins import default_plugins
from ttrl.core.registry import Registry

from .settings import PreparedRun, ProblemSet, TrlSettings, check_grpo_fields, installed_trl_version, prepare


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(run: PreparedRun) -> dict[str, Any]:
    """The resolved configuration, as ``--dry-run`` prints it and the summary records it."""
    estimator = run.pipeline.estimator
    return {
        "trainer": "trl",
        "trl_version": run.trl_version,
        "estimator": {
            "name": estimator.name,
            "options": estimator.options_dict(),
            "requires": sorted(run.pipeline.requires),
            "shapers": [s.name for s in run.pipeline.shapers],
        },
        "answers": {"task_override": run.pipeline.engine.task_override},
        "model": run.settings.model,
        "num_generations": run.settings.num_generations,
        "n_train": run.settings.n_train,
        "groups": run.groups.model_dump(),
        "problems": run.settings.problems.model_dump(),
        "heldout": None if run.settings.heldout is None else run.settings.heldout.model_dump(),
        "grpo_config": run.grpo_kwargs,
    }


def render_prompt(tokenizer: Any, settings: TrlSettings, question: str) -> str:
    """The plain-text prompt (chat template applied) that TRL generates from and tokenizes."""
    user = settings.prompt_template.replace("{prompt}", question)
    if not getattr(tokenizer, "chat_template", None):
        return user
    messages = [{"role": "user", "content": user}]
    if settings.system_prompt is not None:
        messages.insert(0, {"role": "system", "content": settings.system_prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def problem_rows(tokenizer: Any, settings: TrlSettings, problems: ProblemSet) -> list[dict[str, Any]]:
    from ttrl.problems import generate_problems

    return [
        {
            "prompt": render_prompt(tokenizer, settings, p.prompt),
            "group_id": p.id,
            "task": p.task,
            # hidden reference: read by the metrics only, never put into a RolloutGroup
            "reference": p.answer,
        }
        for p in generate_problems(problems.count, seed=problems.seed, levels=problems.levels)
    ]


def greedy_pass_at_1(model: Any, tokenizer: Any, rows: list[dict[str, Any]], pipeline: EstimationPipeline, max_new_tokens: int) -> dict[str, Any]:
    """Fraction of problems whose greedy completion's answer is equivalent to the reference."""
    import torch

    engine = pipeline.engine
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    correct = 0
    answers: list[str | None] = []
    try:
        for start in range(0, len(rows), 8):
            chunk = rows[start : start + 8]
            batch = tokenizer(text=[r["prompt"] for r in chunk], return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
                )
            texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            for row, text in zip(chunk, texts):
                task = engine.task_override or row["task"]
                answer = engine.extract(text, task)
                answers.append(answer)
                correct += engine.equivalent(answer, row["reference"], task)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return {"pass_at_1": correct / len(rows) if rows else None, "problems": len(rows), "answers": answers}


def trainable(model: Any) -> Any:
    """Clear the GGUF "quantized" flag: transformers dequantizes GGUF weights on load, so the model is
    plain float weights, but the flag alone makes the Trainer refuse to fine-tune it."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and str(getattr(quantizer.quantization_config, "quant_method", "")).lower().endswith("gguf"):
        quantizer.remove_quantization_config(model)
    return model


class _ExpectedNoneRewards:
    """Drops TRL's "All reward functions returned None" warning: here None is deliberate (the rollouts
    outside the estimator's train_indices), and TRL would print it for every step."""

    def filter(self, record) -> bool:
        # accelerate's logger adapter prefixes "[RANK n] "
        return "All reward functions returned None" not in str(record.getMessage())


def build_trainer(run: PreparedRun, model: Any, tokenizer: Any, ref: Any, rows: list[dict[str, Any]], callbacks: list[Any] = (),
                  reward_class: type | None = None):
    """A GRPOTrainer whose only reward function is the estimator; returns ``(trainer, reward)``.

    ``reward_class`` replaces :class:`~ttrl.adapters.trl.binding.EstimatorReward` (``ttrl study``'s
    ground-truth ceiling subclasses it)."""
    from datasets import Dataset
    from trl import GRPOConfig

    from ttrl.core.groups import GroupEstimator

    from .binding import EstimatorReward
    from .fastpath import fast_grpo_trainer_class

    kwargs = dict(run.grpo_kwargs)
    if run.settings.beta > 0:
        # TRL loads the KL reference model from the policy's path with model_init_kwargs: a GGUF file
        # needs its file name, and nothing may be downloaded
        kwargs.setdefault("model_init_kwargs", {**ref.from_pretrained_kwargs(), "dtype": run.settings.dtype})
    args = make_grpo_config(GRPOConfig, kwargs)
    from ttrl.token_stats import DEFAULT_CONFIDENCE_K

    groups = GroupEstimator(
        run.pipeline, n_votes=run.settings.num_generations, n_train=run.settings.n_train,
        on_failure=run.groups.on_failure,
        meta={"temperature": run.settings.temperature, "confidence_k": DEFAULT_CONFIDENCE_K,
              "stats_source": "policy logits (trainer: trl)"},
    )
    reward = (reward_class or EstimatorReward)(groups, temperature=run.settings.temperature)
    trainer = fast_grpo_trainer_class()(
        model=trainable(model),
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    reward.bind(trainer)
    import logging

    grpo_logger = logging.getLogger("trl.trainer.grpo_trainer")
    if not any(isinstance(f, _ExpectedNoneRewards) for f in grpo_logger.filters):
        grpo_logger.addFilter(_ExpectedNoneRewards())
    return trainer, reward


def make_grpo_config(grpo_config: type, kwargs: dict[str, Any]) -> Any:
    try:
        return grpo_config(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserError(f"TRL rejected the GRPO configuration derived from trl: ({exc}). Adjust the trl: section.") from None


def _progress_callback():
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs:
                return
            parts = [f"step {state.global_step}/{state.max_steps}", f"reward {logs['reward']:.3f}"]
            for name in ("label_accuracy", "reward_accuracy", "majority_ratio"):
                value = logs.get(f"ttrl/{name}")
                if value is not None:
                    parts.append(f"{name} {value:.3f}")
            if "loss" in logs:
                parts.append(f"loss {logs['loss']:.4f}")
            _say("  " + ", ".join(parts))

    return Progress()


def train(run: PreparedRun) -> dict[str, Any]:
    """Load the model, train, evaluate; returns (and writes) the summary."""
    import torch

    from ttrl.models import load_causal_lm

    started = time.perf_counter()
    settings = run.settings
    torch.manual_seed(settings.seed)
    dtype = torch.bfloat16 if settings.dtype == "bfloat16" else torch.float32
    _say(f"Loading {settings.model} ...")
    model, tokenizer, ref = load_causal_lm(settings.model, dtype=dtype)
    rows = problem_rows(tokenizer, settings, settings.problems)
    heldout = problem_rows(tokenizer, settings, settings.heldout) if settings.heldout is not None else []
    before = None
    if heldout:
        _say(f"pass@1 on {len(heldout)} held-out problems before training ...")
        before = greedy_pass_at_1(model, tokenizer, heldout, run.pipeline, settings.max_completion_length)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer, reward = build_trainer(run, model, tokenizer, ref, rows, callbacks=[_progress_callback()])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the progress lines above say what matters, one line a step
    _say(
        f"Training {settings.max_steps} steps: {settings.prompts_per_step} prompt(s) x {settings.num_generations} "
        f"completions, estimator {run.pipeline.estimator.name} ..."
    )
    train_started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_started
    policy = trainer.accelerator.unwrap_model(trainer.model)
    change = sum(float((p.detach() - initial[name]).pow(2).sum()) for name, p in policy.named_parameters()) ** 0.5
    after = None
    if heldout:
        _say("pass@1 on the held-out problems after training ...")
        after = greedy_pass_at_1(policy, tokenizer, heldout, run.pipeline, settings.max_completion_length)
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    steps = []
    for record, log in zip(reward.history, logged):
        steps.append(
            {
                "step": record.step + 1,
                "reward_mean_logged_by_trl": log.get("reward"),
                "reward_mean": record.metrics.get("reward_mean"),
                "loss": log.get("loss"),
                "metrics": record.metrics,
                "groups": record.groups,
            }
        )
    summary = {
        "config": describe(run),
        "config_path": str(run.config_path),
        "steps": steps,
        "pass_at_1": {
            "before": None if before is None else before["pass_at_1"],
            "after": None if after is None else after["pass_at_1"],
            "heldout_problems": len(heldout),
            "decoding": f"greedy, max {settings.max_completion_length} new tokens",
        },
        "parameter_change_l2": change,
        "seconds": {"total": time.perf_counter() - started, "training": train_seconds},
    }
    out_dir = Path(settings.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if settings.save_model:
        trainer.save_model(str(out_dir / "model"))
    return summary


def print_summary(summary: dict[str, Any], out_dir: str) -> None:
    _say("")
    _say("step  reward*  label_acc  reward_acc  majority_ratio  pairwise_acc   (*mean over the trained groups' rollouts)")
    for s in summary["steps"]:
        m = s["metrics"]
        fmt = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
        _say(
            f"{s['step']:>4}  {fmt(s['reward_mean'])}   {fmt(m.get('label_accuracy'))}     "
            f"{fmt(m.get('reward_accuracy'))}      {fmt(m.get('majority_ratio'))}       {fmt(m.get('pairwise_accuracy'))}"
        )
    p = summary["pass_at_1"]
    if p["before"] is not None:
        _say(f"pass@1 on {p['heldout_problems']} held-out problems: {p['before']:.3f} before, {p['after']:.3f} after")
    _say(f"parameter change (L2): {summary['parameter_change_l2']:.3g}; {summary['seconds']['total']:.0f} s in all")
    _say(f"Summary written to {Path(out_dir) / 'summary.json'}")


def launch(config: RunConfig, *, config_path: Path, dry_run: bool, registry: Registry | None = None) -> int:
    """Entry point of ``ttrl train`` for ``trainer: trl``."""
    registry = registry or default_plugins().registry
    run = prepare(config, registry, config_path=Path(config_path), trl_version=installed_trl_version())
    from trl import GRPOConfig

    extra = {k: v for k, v in run.grpo_kwargs.items() if k in run.settings.grpo_args}
    check_grpo_fields(extra, {f.name for f in dataclasses.fields(GRPOConfig)}, config)
    # building GRPOConfig runs TRL's own consistency checks (batch divisibility and the like) up front
    make_grpo_config(GRPOConfig, run.grpo_kwargs)
    if dry_run:
        print(json.dumps(describe(run), indent=2))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    summary = train(run)
    print_summary(summary, run.settings.output_dir)
    return 0
