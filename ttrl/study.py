"""``ttrl study``: does a model trained with a label-free reward get better? Arms compared on held-out problems.

A study config is a TRL run config (``trainer: trl``, ``answers:``, ``trl:``: the model, prompt, GRPO
sizes and learning rate every arm shares) with a ``study:`` section naming the arms. Each arm trains a
fresh copy of the same model on the same unlabeled problems for the same number of steps, rewarded
by its estimator (``reward: estimator``), by agreement with the hidden reference (``reward:
ground_truth``, the ceiling TTRL compares to) or not at all (``reward: none``, no training). Then every
trained model, and the untrained one, samples ``k`` completions for each held-out problem:

- ``avg@k``: the mean fraction of correct samples per problem; ``maj@k``: whether the majority answer
  of the ``k`` is correct. Both with 95% bootstrap intervals over problems, and the change from the
  untrained model with a paired bootstrap interval (the same problems, before and after).
- per training step: label accuracy, reward accuracy, majority ratio (ttrl's group metrics against
  the hidden reference), TRL's mean token entropy and the mean completion length.

Results go to ``--out``: one JSON file per finished run (a rerun skips them: the study resumes after
an interrupt), ``study.json`` with everything, ``study.md`` with the table, and PNG plots. The
held-out problems come from the same generator as the training problems and are disjoint from them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ttrl.core.config import ComponentSpec, RunConfig, format_validation_error
from ttrl.core.errors import UserError
from ttrl.core.rollout_files import atomic_write

#: What ``--quick`` shrinks (a few steps on a few problems: the machinery, not the outcome).
QUICK = {"trl": {"max_steps": 2, "prompts_per_step": 1, "num_generations": 3, "max_completion_length": 8},
         "study": {"heldout": 4, "k": 2, "bootstrap": 50}}


class Arm(BaseModel):
    """One arm: how its completions are rewarded, and the training seeds it is run with."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Label in tables, plots and file names.")
    reward: Literal["estimator", "ground_truth", "none"] = Field(
        "estimator", description="estimator: the named estimator; ground_truth: 1 if the answer equals the "
        "hidden reference (the ceiling); none: no training (the baseline).")
    estimator: ComponentSpec | None = Field(None, description="The estimator (reward: estimator).")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Training seeds (sampling, data order).")

    @model_validator(mode="before")
    @classmethod
    def _estimator_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("estimator"), str):
            data = {**data, "estimator": {"name": data["estimator"]}}
        return data

    @model_validator(mode="after")
    def _estimator_when_needed(self) -> Arm:
        if self.reward == "estimator" and self.estimator is None:
            raise ValueError("an arm with reward: estimator needs `estimator:`")
        if self.reward != "estimator" and self.estimator is not None:
            raise ValueError(f"an arm with reward: {self.reward} takes no estimator")
        return self


class StudySettings(BaseModel):
    """``study:``: the arms and the held-out evaluation."""

    model_config = ConfigDict(extra="forbid")

    arms: list[Arm] = Field(min_length=1, description="The arms, run in this order.")
    levels: list[int] = Field(default_factory=lambda: [1], min_length=1, description="Problem levels (ttrl.problems).")
    problem_seed: int = Field(0, description="Seed of the problem generator (training and held-out problems).")
    heldout: int = Field(300, ge=1, description="Held-out problems, disjoint from the training problems.")
    k: int = Field(4, ge=1, description="Samples per held-out problem (avg@k, maj@k).")
    eval_temperature: float = Field(0.7, gt=0, description="Sampling temperature of the evaluation.")
    eval_seed: int = Field(1234, description="Seed of the evaluation's sampling (the same for every model).")
    eval_batch: int = Field(16, ge=1, description="Held-out prompts per generation batch (x k rows).")
    bootstrap: int = Field(2000, ge=10, description="Bootstrap resamples for the 95% intervals.")

    @model_validator(mode="after")
    def _unique_names(self) -> StudySettings:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be distinct, got {names}")
        return self


def parse_study(config: RunConfig, *, quick: bool) -> tuple[RunConfig, StudySettings]:
    if config.trainer is None or config.trainer.strip().lower() != "trl":
        where = config.locate(("trainer",))
        raise UserError("A study config trains through TRL: set `trainer: trl`" + (f" ({where})." if where else "."))
    if not config.study:
        raise UserError("The config has no `study:` section; add `study: {arms: [...]}` (docs/study.md).")
    study_data = dict(config.study)
    if quick:
        study_data.update(QUICK["study"])
        config = config.model_copy(update={"trl": {**config.trl, **QUICK["trl"]}})  # keeps the file:line locator
    try:
        settings = StudySettings.model_validate(study_data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, what="study: section", locate=config.locate, prefix=("study",),
                                                model=StudySettings)) from None
    return config, settings


# -- problems ----------------------------------------------------------------------------------------

def split_problems(settings: StudySettings, train_count: int) -> tuple[list[Any], list[Any]]:
    """``(train, heldout)``: distinct problems from one generator stream, the held-out ones first."""
    from ttrl.problems import generate_problems

    problems = generate_problems(settings.heldout + train_count, seed=settings.problem_seed, levels=settings.levels,
                                 prefix="ttrl-study")
    return problems[settings.heldout :], problems[: settings.heldout]


# -- evaluation ----------------------------------------------------------------------------------------

def sample_completions(model: Any, tokenizer: Any, prompts: list[str], *, k: int, temperature: float,
                       max_new_tokens: int, seed: int, batch: int = 16) -> list[list[str]]:
    """``k`` sampled completions per prompt; each prompt's forward pass is shared by its ``k`` samples.

    Prompts are left-padded with position ids counted from each row's first token (as ``generate``
    does); sampling is plain multinomial at ``temperature`` from one seeded generator.
    """
    import torch

    from ttrl.adapters.trl.fastpath import cache_kwarg, prefill

    eos = model.generation_config.eos_token_id
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos if eos is not None else tokenizer.eos_token_id])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(eos_ids[0])
    generator = torch.Generator().manual_seed(seed)
    step_cache = cache_kwarg(model)
    head = model.get_output_embeddings()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    out: list[list[str]] = []
    try:
        for start in range(0, len(prompts), batch):
            chunk = prompts[start : start + batch]
            enc = tokenizer(text=chunk, return_tensors="pt", padding=True)
            mask = enc["attention_mask"]
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            rows = torch.arange(len(chunk)).repeat_interleave(k)
            with torch.no_grad():
                hidden, cache = prefill(model.base_model, enc["input_ids"], mask, rows, position_ids=positions)
                logits = head(hidden[:, -1])[rows].float()
                mask, last = mask[rows], positions[rows, -1]
                done = torch.zeros(len(rows), dtype=torch.bool)
                tokens = []
                for _ in range(max_new_tokens):
                    probs = torch.softmax(logits / temperature, dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                    nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                    tokens.append(nxt)
                    done |= torch.isin(nxt, eos_ids)
                    if bool(done.all()):
                        break
                    mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype)], dim=1)
                    last = last + 1
                    step = model(input_ids=nxt.unsqueeze(1), attention_mask=mask, position_ids=last.unsqueeze(1),
                                 use_cache=True, **{step_cache: cache})
                    logits = step.logits[:, -1].float()
            ids = torch.stack(tokens, dim=1)
            texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
            out.extend(texts[i * k : (i + 1) * k] for i in range(len(chunk)))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def grade(engine: Any, task: str, completions: list[list[str]], references: list[str]) -> dict[str, list[float]]:
    """Per problem: the fraction of correct samples (avg@k) and whether the majority answer is correct (maj@k)."""
    avg, maj = [], []
    for samples, reference in zip(completions, references):
        answers = [engine.extract(text, task) for text in samples]
        correct = [engine.equivalent(a, reference, task) for a in answers]
        avg.append(sum(correct) / len(correct))
        maj.append(float(_majority_correct(engine, task, answers, correct)))
    return {"avg": avg, "maj": maj}


def _majority_correct(engine: Any, task: str, answers: list[str | None], correct: list[bool]) -> bool:
    # the majority among the answered samples, classes by the engine's equivalence; a tie takes the first
    classes: list[list[int]] = []
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        for members in classes:
            if engine.equivalent(answers[members[0]], answer, task):
                members.append(i)
                break
        else:
            classes.append([i])
    if not classes:
        return False
    best = max(classes, key=len)
    return bool(correct[best[0]])


def bootstrap_interval(values: list[float], resamples: int, seed: int, paired: list[float] | None = None) -> list[float]:
    """95% percentile interval of the mean (of ``values - paired`` when given), resampling problems."""
    import numpy as np

    x = np.asarray(values, dtype=float) - (np.asarray(paired, dtype=float) if paired is not None else 0.0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


# -- training ------------------------------------------------------------------------------------------

def truth_reward_class():
    """``reward: ground_truth``: the group layer still runs (majority vote, for the label-free metrics),
    but TRL trains on agreement with the hidden reference."""
    from ttrl.adapters.trl.binding import EstimatorReward

    class TruthReward(EstimatorReward):
        def __call__(self, prompts, completions, completion_ids, group_id, task, reference=None, **kwargs):
            super().__call__(prompts, completions, completion_ids, group_id, task, reference=reference, **kwargs)
            engine = self.groups.pipeline.engine
            rewards = []
            for text, t, ref in zip(completions, task, reference, strict=True):
                t = engine.task_override or t
                rewards.append(float(engine.equivalent(engine.extract(text, t), ref, t)))
            self.history[-1].trainer_rewards = rewards
            return rewards

    return TruthReward


def _progress(label: str, total: int):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        started = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs:
                return
            elapsed = time.monotonic() - self.started
            eta = elapsed / max(state.global_step, 1) * (total - state.global_step)
            filled = int(20 * state.global_step / total)
            parts = [f"[{'#' * filled}{'.' * (20 - filled)}] {label} step {state.global_step}/{total}",
                     f"reward {logs['reward']:.2f}"]
            for name in ("label_accuracy", "majority_ratio"):
                if f"ttrl/{name}" in logs:
                    parts.append(f"{name} {logs[f'ttrl/{name}']:.2f}")
            parts.append(f"eta {eta / 60:.1f} min")
            print("  " + ", ".join(parts), file=sys.stderr, flush=True)

    return Progress()


def _arm_config(config: RunConfig, arm: Arm, seed: int) -> RunConfig:
    estimator = arm.estimator if arm.reward == "estimator" else ComponentSpec(name="majority_vote")
    trl = {**config.trl, "seed": seed, "heldout": None}
    return config.model_copy(update={"estimator": estimator, "trl": trl, "study": {}})  # keeps the locator


def train_arm(config: RunConfig, config_path: Path, arm: Arm, seed: int, base: tuple[Any, Any, Any],
              train_problems: list[Any], registry: Any, out_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Train a copy of the base model for one (arm, seed); returns the policy and the per-step curves."""
    import torch

    from ttrl.adapters.trl.run import build_trainer, render_prompt, trainable
    from ttrl.adapters.trl.settings import installed_trl_version, prepare

    run = prepare(_arm_config(config, arm, seed), registry, config_path=config_path, trl_version=installed_trl_version())
    run.grpo_kwargs["output_dir"] = str(out_dir / "trainer")
    model, tokenizer, ref = base
    rows = [{"prompt": render_prompt(tokenizer, run.settings, p.prompt), "group_id": p.id, "task": p.task,
             "reference": p.answer} for p in train_problems]
    torch.manual_seed(seed)
    policy = trainable(copy.deepcopy(model))
    label = f"{arm.name} seed {seed}"
    trainer, reward = build_trainer(run, policy, tokenizer, ref, rows, callbacks=[_progress(label, run.settings.max_steps)],
                                    reward_class=truth_reward_class() if arm.reward == "ground_truth" else None)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    steps = []
    for record, log in zip(reward.history, logged):
        metrics = record.metrics
        steps.append({
            "step": record.step + 1,
            "reward_mean": log.get("reward"),
            "label_accuracy": metrics.get("label_accuracy"),
            "reward_accuracy": 1.0 if arm.reward == "ground_truth" else metrics.get("reward_accuracy"),
            "majority_ratio": metrics.get("majority_ratio"),
            "ground_truth_ratio": metrics.get("ground_truth_ratio"),
            "entropy": log.get("entropy"),
            "response_length": log.get("completions/mean_length"),
        })
    policy = trainer.accelerator.unwrap_model(trainer.model)
    return policy, {"steps": steps, "train_seconds": seconds}


# -- the study -----------------------------------------------------------------------------------------

def fingerprint(config: RunConfig, settings: StudySettings) -> str:
    """What the results depend on: a rerun with another config must not mix its results with these."""
    payload = {"trl": config.trl, "answers": config.answers.model_dump(), "study": settings.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _evaluate(model: Any, tokenizer: Any, config: RunConfig, settings: StudySettings, heldout: list[Any],
              engine: Any, max_new_tokens: int) -> dict[str, Any]:
    from ttrl.adapters.trl.run import render_prompt
    from ttrl.adapters.trl.settings import parse_settings

    trl_settings = parse_settings(config)
    prompts = [render_prompt(tokenizer, trl_settings, p.prompt) for p in heldout]
    started = time.perf_counter()
    completions = sample_completions(model, tokenizer, prompts, k=settings.k, temperature=settings.eval_temperature,
                                     max_new_tokens=max_new_tokens, seed=settings.eval_seed, batch=settings.eval_batch)
    task = engine.task_override or heldout[0].task
    graded = grade(engine, task, completions, [p.answer for p in heldout])
    return {**graded, "eval_seconds": time.perf_counter() - started,
            "examples": [{"prompt": p.prompt, "reference": p.answer, "samples": c} for p, c in zip(heldout[:3], completions[:3])]}


def summarize(result: dict[str, Any], before: dict[str, Any] | None, settings: StudySettings) -> dict[str, Any]:
    out = {}
    for metric in ("avg", "maj"):
        values = result[metric]
        out[f"{metric}@k"] = sum(values) / len(values)
        out[f"{metric}@k_ci"] = bootstrap_interval(values, settings.bootstrap, settings.eval_seed)
        if before is not None:
            out[f"{metric}@k_change"] = out[f"{metric}@k"] - sum(before[metric]) / len(before[metric])
            out[f"{metric}@k_change_ci"] = bootstrap_interval(values, settings.bootstrap, settings.eval_seed, paired=before[metric])
    return out


def run_study(config_path: Path, out_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Run (or resume) every arm of the study at ``config_path``; write results under ``out_dir``."""
    import os

    from ttrl.core.config import load_run_config
    from ttrl.core.estimation import EstimationPipeline
    from ttrl.core.plugins import default_plugins
    from ttrl.adapters.trl.settings import installed_trl_version, parse_settings, prepare

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config, settings = parse_study(load_run_config(config_path), quick=quick)
    registry = default_plugins().registry
    # every arm's settings are checked (estimator names, options, trl: keys) before any model is loaded
    for arm in settings.arms:
        for seed in arm.seeds:
            prepare(_arm_config(config, arm, seed), registry, config_path=config_path, trl_version=installed_trl_version())
    trl_settings = parse_settings(config)
    train_count = trl_settings.max_steps * trl_settings.prompts_per_step
    train_problems, heldout = split_problems(settings, train_count)
    key = fingerprint(config, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = EstimationPipeline.from_config(_arm_config(config, settings.arms[0], 0), registry).engine

    def stored(name: str) -> dict[str, Any] | None:
        path = out_dir / "runs" / f"{name}.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("fingerprint") != key:
            raise UserError(f"{path} holds a run of a different study config (or of --quick). Use another --out, "
                            "or delete the folder to start over.")
        return data

    def store(name: str, data: dict[str, Any]) -> None:
        (out_dir / "runs").mkdir(exist_ok=True)
        with atomic_write(out_dir / "runs" / f"{name}.json") as handle:
            json.dump({**data, "fingerprint": key}, handle, indent=1)

    base = None

    def load_base():
        nonlocal base
        if base is None:
            from ttrl.models import load_causal_lm

            base = load_causal_lm(trl_settings.model)
        return base

    runs: dict[str, dict[str, Any]] = {}
    before = stored("untrained")
    if before is None:
        model, tokenizer, _ = load_base()
        print(f"Evaluating the untrained model on {len(heldout)} held-out problems x {settings.k} samples ...",
              file=sys.stderr, flush=True)
        before = _evaluate(model, tokenizer, config, settings, heldout, engine, trl_settings.max_completion_length)
        store("untrained", before)
    plan = [(arm, seed) for arm in settings.arms if arm.reward != "none" for seed in arm.seeds]
    for index, (arm, seed) in enumerate(plan, 1):
        name = f"{arm.name}-seed{seed}"
        result = stored(name)
        if result is None:
            print(f"Run {index}/{len(plan)}: {name} ({trl_settings.max_steps} steps) ...", file=sys.stderr, flush=True)
            base_model = load_base()
            policy, curves = train_arm(config, config_path, arm, seed, base_model, train_problems, registry, out_dir)
            result = {**curves, **_evaluate(policy, base_model[1], config, settings, heldout, engine,
                                            trl_settings.max_completion_length)}
            del policy
            store(name, result)
        else:
            print(f"Run {index}/{len(plan)}: {name}: done earlier, read from {out_dir / 'runs'}", file=sys.stderr)
        runs[name] = {"arm": arm.name, "seed": seed, **result}
    table = [{"run": "untrained", "arm": next((a.name for a in settings.arms if a.reward == "none"), "untrained"),
              "seed": None, **summarize(before, None, settings)}]
    for name, result in runs.items():
        table.append({"run": name, "arm": result["arm"], "seed": result["seed"], **summarize(result, before, settings),
                      "train_seconds": result["train_seconds"]})
    summary = {
        "config": str(config_path), "quick": quick, "fingerprint": key,
        "settings": {"study": settings.model_dump(mode="json"), "trl": config.trl,
                     "train_problems": len(train_problems), "heldout_problems": len(heldout)},
        "table": table, "untrained": before, "runs": runs,
    }
    with atomic_write(out_dir / "study.json") as handle:
        json.dump(summary, handle, indent=1)
    with atomic_write(out_dir / "study.md") as handle:
        handle.write(markdown_table(summary))
    plot(summary, out_dir)
    return summary


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def markdown_table(summary: dict[str, Any]) -> str:
    k = summary["settings"]["study"]["k"]
    lines = [f"| run | avg@{k} (95% CI) | change (95% CI) | maj@{k} (95% CI) | change (95% CI) | training s |",
             "|---|---|---|---|---|---:|"]
    for row in summary["table"]:
        cells = [row["run"]]
        for metric in ("avg", "maj"):
            lo, hi = row[f"{metric}@k_ci"]
            cells.append(f"{_pct(row[f'{metric}@k'])} ({_pct(lo)}–{_pct(hi)})")
            if f"{metric}@k_change" in row:
                lo, hi = row[f"{metric}@k_change_ci"]
                cells.append(f"{100 * row[f'{metric}@k_change']:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f})")
            else:
                cells.append("")
        cells.append(f"{row['train_seconds']:.0f}" if "train_seconds" in row else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


CURVES = (("label_accuracy", "label accuracy"), ("reward_accuracy", "reward accuracy"),
          ("majority_ratio", "majority ratio"), ("ground_truth_ratio", "correct completions (ground-truth ratio)"),
          ("entropy", "mean token entropy (nats)"), ("response_length", "completion length (tokens)"))


def plot(summary: dict[str, Any], out_dir: Path, window: int = 5) -> list[Path]:
    """``curves.png`` (per-step metrics, moving average over ``window`` steps) and ``heldout.png``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'ttrl[report]'); no plots written.", file=sys.stderr)
        return []
    import numpy as np

    arms = list(dict.fromkeys(row["arm"] for row in summary["table"]))
    colors = {arm: plt.cm.tab10(i) for i, arm in enumerate(arms)}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (field, title) in zip(axes.flat, CURVES):
        for name, run in summary["runs"].items():
            values = np.array([np.nan if s.get(field) is None else s[field] for s in run["steps"]], dtype=float)
            if np.all(np.isnan(values)):
                continue
            smooth = np.array([np.nanmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))])
            ax.plot(np.arange(1, len(values) + 1), smooth, color=colors[run["arm"]],
                    linestyle="-" if run["seed"] == min(r["seed"] for r in summary["runs"].values() if r["arm"] == run["arm"]) else "--",
                    label=name)
        ax.set_title(title)
        ax.set_xlabel("training step")
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 7), fontsize=8)
    fig.suptitle(f"per-step training metrics (moving average over {window} steps)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    paths = [out_dir / "curves.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    k = summary["settings"]["study"]["k"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ("avg", "maj")):
        rows = summary["table"]
        means = [100 * r[f"{metric}@k"] for r in rows]
        errors = np.array([[100 * (r[f"{metric}@k"] - r[f"{metric}@k_ci"][0]), 100 * (r[f"{metric}@k_ci"][1] - r[f"{metric}@k"])] for r in rows]).T
        ax.bar(range(len(rows)), means, yerr=errors, capsize=3,
               color=[colors.get(r["arm"], "grey") for r in rows])
        ax.set_xticks(range(len(rows)), [r["run"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{metric}@{k} on held-out problems (%)")
    fig.tight_layout()
    paths.append(out_dir / "heldout.png")
    fig.savefig(paths[1], dpi=80)
    plt.close(fig)
    return paths
