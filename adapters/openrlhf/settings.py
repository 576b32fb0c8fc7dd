"""The ``openrlhf:`` section of a run config, and the OpenRLHF command line it resolves to.

Everything here is checked before Ray, vLLM or a GPU is touched: the OpenRLHF version, the estimator
and its options, whether its token statistics can be produced, ``n_train <= n_votes``, and flags that
would defeat label-free training (dynamic filtering reads the ground-truth grader's scores).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttrl.core.config import RunConfig, format_validation_error
from ttrl.core.errors import OptionError, UserError
from ttrl.core.estimation import EstimationPipeline

from ttrl.core.groups import TRAINER_INPUTS, bind_train_size, stats_required

#: OpenRLHF releases ttrl's patches were tested against (tests/test_openrlhf_*.py run on 0.11.2's code).
TESTED_VERSIONS = ("0.11.2",)
ENTRY_MODULE = "openrlhf.cli.train_ppo_ray"
LAUNCH_MODULE = "ttrl.adapters.openrlhf.launch"
SPEC_ENV = "TTRL_OPENRLHF_SPEC"
DEFAULT_ROLLOUT_BATCH = 8  # prompts per rollout batch (TTRL verl/examples/ttrl/aime.sh: DATA_TRAIN_BATCH_SIZE=8)
DEFAULT_ROLLOUT_MICRO_BATCH = 2  # responses per experience-making forward (TTRL: log_prob micro batch 2)
DEFAULT_TRAIN_MICRO_BATCH = 2  # responses per GPU per training forward (TTRL: ppo_micro_batch_size_per_gpu=2)


class OpenRLHFSettings(BaseModel):
    """What a user writes under ``openrlhf:``. Defaults are the TTRL paper's settings."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Policy model: Hugging Face id or local directory (--actor.model_name_or_path).")
    prompt_data: str = Field(description="Training prompts: a JSON/JSONL file or dataset OpenRLHF can load.")
    eval_data: str | None = Field(None, description="Evaluation prompts, graded against their ground truth.")
    input_key: str = Field("prompt", description="Field holding the prompt.")
    label_key: str | None = Field(
        "answer", description="Field holding the reference answer: used for metrics and evaluation only, never as reward."
    )
    apply_chat_template: bool = Field(True, description="Wrap prompts in the tokenizer's chat template.")
    n_votes: int = Field(64, ge=2, description="Responses sampled per prompt, all of which vote (TTRL: 64).")
    n_train: int = Field(32, ge=2, description="Responses per prompt that are trained on (TTRL: 32).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature for training rollouts.")
    eval_temperature: float = Field(0.6, gt=0, description="Sampling temperature for evaluation.")
    eval_top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling for evaluation (TTRL: 0.95).")
    eval_samples: int = Field(16, ge=1, description="Responses per evaluation prompt (pass@1 is their mean).")
    max_new_tokens: int = Field(3072, ge=1, description="Maximum new tokens per response.")
    max_len: int = Field(4096, ge=2, description="Prompt plus response tokens (--data.max_len).")
    learning_rate: float = Field(5e-7, gt=0, description="Actor learning rate.")
    lr_scheduler: str = Field("cosine", description="Learning-rate schedule (a transformers scheduler name).")
    advantage: Literal["group_norm", "rloo", "reinforce_baseline", "dr_grpo"] = Field(
        "group_norm", description="OpenRLHF advantage estimator over each prompt's n_train rewards."
    )
    episodes: int = Field(1, ge=1, description="Passes over the prompt set (--train.num_episodes).")
    num_nodes: int = Field(1, ge=1, description="Nodes for the actor (and, colocated, vLLM).")
    gpus_per_node: int = Field(1, ge=1, description="GPUs per node.")
    token_stats: Literal["auto", "actor", "none"] = Field(
        "auto",
        description="Where token statistics come from: actor = full-vocabulary statistics from the actor's "
        "logits during experience making; none = not computed; auto = actor when the estimator needs them.",
    )
    output_dir: str = Field(
        "./checkpoints/ttrl-openrlhf",
        description="Checkpoints, logs and the generated reward file; relative to the run config's folder.",
    )
    save_steps: int = Field(
        1, description="Save a resumable checkpoint every this many steps (TTRL's scripts: every step); -1: never."
    )
    keep_checkpoints: int = Field(3, ge=1, description="Checkpoints kept on disk; older ones are deleted.")
    best_checkpoint_metric: str | None = Field(
        None,
        description="An evaluation metric (e.g. eval_default_pass1) whose best value keeps a checkpoint. Off by "
        "default: in test-time RL the evaluation set is the training set, so it would select by labels.",
    )
    ray_address: str | None = Field(None, description="An existing Ray cluster to join (multi-node); default: start one.")
    flags: dict[str, Any] = Field(
        default_factory=dict,
        description="Any OpenRLHF flag, without the leading --, e.g. {'ds.zero_stage': 3, 'vllm.enforce_eager': true}. "
        "true adds a switch, false leaves it out, a list gives several values.",
    )


#: Flags ttrl derives from the settings above; setting them under ``flags:`` would contradict them.
OWNED_FLAGS = {
    "rollout.n_samples_per_prompt": "n_votes",
    "reward.remote_url": "(generated by ttrl)",
    "actor.model_name_or_path": "model",
    "data.prompt_dataset": "prompt_data",
    "eval.dataset": "eval_data",
    "data.input_key": "input_key",
    "data.label_key": "label_key",
    "rollout.temperature": "temperature",
    "eval.temperature": "eval_temperature",
    "ckpt.save_steps": "save_steps",
    "ckpt.max_num": "keep_checkpoints",
    "ckpt.best_metric_key": "best_checkpoint_metric",
    "eval.n_samples_per_prompt": "eval_samples",
    "rollout.max_new_tokens": "max_new_tokens",
    "data.max_len": "max_len",
    "actor.adam.lr": "learning_rate",
    "actor.lr_scheduler": "lr_scheduler",
    "algo.advantage.estimator": "advantage",
    "train.num_episodes": "episodes",
    "actor.num_nodes": "num_nodes",
    "actor.num_gpus_per_node": "gpus_per_node",
}
#: Flags that cannot work with group-level estimation, and why.
REJECTED_FLAGS = {
    "algo.dynamic_filtering_enable": "it filters prompts by the reward file's ground-truth scores, which would leak labels into training",
    "train.async_enable": "ttrl's group estimation runs in the synchronous PPOTrainer only",
    "train.agent_func_path": "the agent's rewards would bypass the estimator",
    "reward.model_name_or_path": "rewards come from the estimator, not a reward model",
}
#: Stats from the actor's logits need the unpacked forward (packed sequences are not unpacked for them).
STATS_INCOMPATIBLE_FLAGS = ("ds.packing_samples", "ds.ring_attn_size", "train.dynamic_batch_enable")


def check_version(*, required: bool = True) -> str | None:
    """The installed OpenRLHF version; a :class:`UserError` unless it is one of :data:`TESTED_VERSIONS`
    (or, when not ``required``, not installed at all)."""
    wanted = " or ".join(TESTED_VERSIONS)
    try:
        version = importlib.metadata.version("openrlhf")
    except importlib.metadata.PackageNotFoundError:
        if not required:
            return None
        raise UserError(
            f"trainer: openrlhf needs OpenRLHF {wanted}, which is not installed. On a machine with CUDA: "
            f"pip install 'openrlhf[vllm]=={TESTED_VERSIONS[-1]}' 'ttrl[openrlhf]' (see docs/openrlhf.md)."
        ) from None
    if version not in TESTED_VERSIONS:
        raise UserError(
            f"OpenRLHF {version} is installed, but ttrl's adapter is tested with OpenRLHF {wanted} only: it "
            "patches RemoteExperienceMaker and SamplesGenerator, whose internals change between releases. "
            f"Install 'openrlhf=={TESTED_VERSIONS[-1]}'."
        )
    return version


def known_flags() -> frozenset[str] | None:
    """Flag names OpenRLHF's PPO entry point defines, read from its source (its parser is built in
    ``__main__``, so it cannot be imported); ``None`` when OpenRLHF is not installed."""
    import importlib.util
    import re

    spec = importlib.util.find_spec(ENTRY_MODULE) if importlib.util.find_spec("openrlhf") else None
    if spec is None or not spec.origin:
        return None
    source = Path(spec.origin).read_text(encoding="utf-8")
    names = set(re.findall(r'add_argument\(\s*"--([\w.]+)"', source))
    for templated in re.findall(r'add_argument\(\s*f"--\{prefix\}\.([\w.]+)"', source):
        names.update(f"{prefix}.{templated}" for prefix in ("actor", "critic"))
    return frozenset(names)


def load_settings(config: RunConfig) -> OpenRLHFSettings:
    """Phase-2 validation of the ``openrlhf:`` section, errors pointing at file:line."""
    if not config.openrlhf:
        raise UserError("trainer: openrlhf needs an `openrlhf:` section with at least `model:` and `prompt_data:`.")
    try:
        settings = OpenRLHFSettings.model_validate(config.openrlhf)
    except ValidationError as exc:
        raise OptionError(
            format_validation_error(exc, what="openrlhf: section", locate=config.locate, prefix=("openrlhf",))
            + " Run settings are documented in docs/openrlhf.md."
        ) from None
    prompts = int(settings.flags.get("rollout.batch_size", DEFAULT_ROLLOUT_BATCH))
    micro = int(settings.flags.get("rollout.micro_batch_size", DEFAULT_ROLLOUT_MICRO_BATCH))
    actors = settings.num_nodes * settings.gpus_per_node
    if prompts * settings.n_train // micro < actors:
        raise OptionError(
            f"openrlhf: {prompts} prompts x n_train {settings.n_train} responses make "
            f"{prompts * settings.n_train // micro} micro-batches of {micro}, fewer than the {actors} actor GPUs; "
            "OpenRLHF needs one per GPU after ttrl keeps n_train of n_votes. Raise flags.rollout.batch_size "
            "or lower flags.rollout.micro_batch_size."
        )
    train_batch = int(settings.flags.get("train.batch_size", settings.n_train))
    train_micro = int(settings.flags.get("train.micro_batch_size", DEFAULT_TRAIN_MICRO_BATCH))
    if train_batch % (train_micro * actors):
        raise OptionError(
            f"openrlhf: train.batch_size {train_batch} is not a multiple of train.micro_batch_size {train_micro} x "
            f"{actors} actor GPUs, which DeepSpeed requires. Set flags.train.batch_size to a multiple of "
            f"{train_micro * actors}."
        )
    if (prompts * settings.n_train) % train_batch:
        raise OptionError(
            f"openrlhf: a rollout batch trains on {prompts} prompts x n_train {settings.n_train} = "
            f"{prompts * settings.n_train} responses, not a multiple of train.batch_size {train_batch}: the last "
            "optimizer step would mix in the next batch's gradients. Adjust flags.rollout.batch_size or "
            "flags.train.batch_size."
        )
    known = known_flags()
    for flag in settings.flags:
        where = config.locate(("openrlhf", "flags", flag)) or config.locate(("openrlhf", "flags"))
        at = f" ({where})" if where else ""
        name = flag.lstrip("-")
        if known is not None and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise OptionError(
                f"openrlhf.flags.{flag}{at} is not a flag of OpenRLHF's {ENTRY_MODULE}."
                + (f" Did you mean {close[0]!r}?" if close else "")
                + f" See `python -m {ENTRY_MODULE} --help`."
            )
        if name in OWNED_FLAGS:
            raise OptionError(f"openrlhf.flags.{flag}{at} is set by ttrl from `openrlhf.{OWNED_FLAGS[name]}`; set that instead.")
        if name in REJECTED_FLAGS and settings.flags[flag] not in (False, None):
            raise OptionError(f"openrlhf.flags.{flag}{at} is not supported with ttrl estimators: {REJECTED_FLAGS[name]}.")
    return settings


def _flag_on(settings: OpenRLHFSettings, name: str) -> bool:
    value = settings.flags.get(name, settings.flags.get(f"--{name}"))
    return value not in (None, False, 0, 1) if name == "ds.ring_attn_size" else bool(value)


def resolve_estimation(config: RunConfig, settings: OpenRLHFSettings, registry) -> tuple[RunConfig, EstimationPipeline, bool]:
    """Estimator, options and shapers validated; whether token statistics must be computed."""
    if config.estimator is None:
        raise OptionError("The run config selects no estimator. Add `estimator: {name: majority_vote}`.")
    config = bind_train_size(config, registry, n_votes=settings.n_votes, n_train=settings.n_train, section="openrlhf")
    pipeline = EstimationPipeline.from_config(config, registry)
    needs = stats_required(pipeline)
    unknown = pipeline.requires - TRAINER_INPUTS
    if unknown:
        raise UserError(
            f"Estimator {pipeline.estimator.name!r} needs {', '.join(sorted(unknown))}, which the OpenRLHF adapter "
            f"cannot compute (it provides {', '.join(sorted(TRAINER_INPUTS))})."
        )
    if needs and settings.token_stats == "none":
        where = config.locate(("openrlhf", "token_stats"))
        raise UserError(
            f"Estimator {pipeline.estimator.name!r} needs token statistics ({', '.join(sorted(needs))}) but "
            f"openrlhf.token_stats is none" + (f" ({where})" if where else "")
            + ". Set token_stats: actor (or auto), or choose an estimator that needs only answers (majority_vote)."
        )
    use_stats = bool(needs) or settings.token_stats == "actor"
    if use_stats:
        clash = [f for f in STATS_INCOMPATIBLE_FLAGS if _flag_on(settings, f)]
        if clash:
            raise UserError(
                f"Estimator {pipeline.estimator.name!r} needs token statistics from the actor's logits, which ttrl "
                f"computes on unpacked batches only; remove {', '.join('flags.' + c for c in clash)} from openrlhf:."
            )
    return config, pipeline, use_stats


def estimation_spec(config: RunConfig, settings: OpenRLHFSettings, use_stats: bool) -> dict[str, Any]:
    """What the OpenRLHF processes need to rebuild the estimator: JSON, passed in an environment variable."""
    run = config.model_dump(mode="json", include={"estimator", "reward_shaping", "answers", "groups"})
    return {
        "run": run,
        "n_votes": settings.n_votes,
        "n_train": settings.n_train,
        "token_stats": use_stats,
        "temperature": settings.temperature,
        "eval_top_p": settings.eval_top_p,
    }


def _flag_args(name: str, value: Any) -> list[str]:
    if value is None or value is False:
        return []
    if value is True:
        return [f"--{name}"]
    if isinstance(value, (list, tuple)):
        return [f"--{name}", *(str(v) for v in value)]
    return [f"--{name}", str(value)]


def openrlhf_flags(settings: OpenRLHFSettings, reward_file: Path) -> list[str]:
    """OpenRLHF's command-line flags: TTRL defaults, then the user's ``flags:`` on top."""
    gpus = settings.num_nodes * settings.gpus_per_node
    output = Path(settings.output_dir)
    values: dict[str, Any] = {
        # ttrl-owned (see OWNED_FLAGS)
        "actor.model_name_or_path": settings.model,
        "data.prompt_dataset": settings.prompt_data,
        "data.input_key": settings.input_key,
        "data.label_key": settings.label_key,
        "data.apply_chat_template": settings.apply_chat_template,
        "eval.dataset": settings.eval_data,
        "eval.temperature": settings.eval_temperature,
        "eval.n_samples_per_prompt": settings.eval_samples,
        "rollout.n_samples_per_prompt": settings.n_votes,
        "rollout.temperature": settings.temperature,
        "rollout.max_new_tokens": settings.max_new_tokens,
        "data.max_len": settings.max_len,
        "reward.remote_url": str(reward_file),
        "actor.adam.lr": settings.learning_rate,
        "actor.lr_scheduler": settings.lr_scheduler,
        "algo.advantage.estimator": settings.advantage,
        "train.num_episodes": settings.episodes,
        "actor.num_nodes": settings.num_nodes,
        "actor.num_gpus_per_node": settings.gpus_per_node,
        "ckpt.save_steps": settings.save_steps,
        "ckpt.max_num": settings.keep_checkpoints,
        "ckpt.best_metric_key": settings.best_checkpoint_metric or "none",
        # defaults the user may override under flags: TTRL's code (verl/examples/ttrl/aime.sh and its
        # verl ppo_trainer.yaml defaults) where it states a value, else ttrl's choice
        "ref.num_nodes": settings.num_nodes,
        "ref.num_gpus_per_node": settings.gpus_per_node,
        "vllm.num_engines": gpus,
        "vllm.tensor_parallel_size": 1,  # TTRL: tensor_model_parallel_size=1
        "train.colocate_all": True,
        "vllm.enable_sleep": True,
        "ds.enable_sleep": True,
        "vllm.gpu_memory_utilization": 0.6,  # ttrl's choice (TTRL: 0.8, without sleep mode)
        "algo.kl.use_loss": True,  # TTRL: actor.use_kl_loss=True
        "algo.kl.init_coef": 0.001,  # TTRL: kl_loss_coef 0.001 (verl default), against the reference model
        "algo.kl.estimator": "k3",  # TTRL: kl_loss_type low_var_kl (verl's clipped k3)
        "rollout.batch_size": DEFAULT_ROLLOUT_BATCH,
        "rollout.micro_batch_size": DEFAULT_ROLLOUT_MICRO_BATCH,
        # TTRL: ppo_mini_batch_size=1 prompt (x n responses): one optimizer update per n_train responses
        # (TTRL's are one prompt's; OpenRLHF's replay buffer shuffles them across the batch's prompts)
        "train.batch_size": settings.n_train,
        "train.micro_batch_size": DEFAULT_TRAIN_MICRO_BATCH,
        "train.max_epochs": 1,  # TTRL: ppo_epochs=1
        "actor.adam.weight_decay": 0.01,  # TTRL: optim weight_decay 0.01 (verl default)
        "actor.lr_warmup_ratio": 0.03,  # TTRL: lr_warmup_steps_ratio=0.03
        "ds.zero_stage": 2,
        "ds.param_dtype": "bf16",
        "actor.gradient_checkpointing_enable": True,  # TTRL: enable_gradient_checkpointing=True
        "eval.steps": 2 if settings.eval_data else -1,  # TTRL: test_freq=2
        "ckpt.path": str(output / "ckpt"),
        "ckpt.output_dir": str(output / "model"),
        "logger.logging_steps": 1,
        "logger.tensorboard_dir": str(output / "tensorboard"),
    }
    for name, value in settings.flags.items():
        values[name.lstrip("-")] = value
    args: list[str] = []
    for name, value in values.items():
        args += _flag_args(name, value)
    return args


def launch_command(flags: list[str], spec_path: Path) -> list[str]:
    """The process ``ttrl train`` runs: ttrl's launcher, which starts OpenRLHF's own entry point."""
    return [sys.executable, "-m", LAUNCH_MODULE, "--ttrl-spec", str(spec_path), "--", *flags]


def format_command(command: list[str]) -> str:
    """A copy-pasteable shell command, one flag and its values per line."""
    lines: list[list[str]] = [[]]
    for part in command:
        if part.startswith("--") and lines[-1]:
            lines.append([])
        lines[-1].append(shlex.quote(part))
    return " \\\n    ".join(" ".join(line) for line in lines)


def dump_spec(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True)
