"""The ``verl:`` section of a run config, and the verl configuration it resolves to.

Checked before Ray or a GPU starts, errors naming the run config's file:line: the estimator and its
options, whether verl can provide its token statistics, ``n_train <= n_votes``, batch sizes, and
every key under ``overrides:`` against verl's own configuration schema (when verl is installed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ttrl.core.config import RunConfig
from ttrl.adapters import check_trainer_version, load_section
from ttrl.core.errors import OptionError, UserError

from .spec import SECTION, TRAINER_MODE

SUPPORTED_SERIES = "0.9"
SETUP_HOOK = "ttrl.adapters.verl.setup.register"
#: The hook for runs that need :data:`LOGIT_STATS`: it also patches verl's log-prob pass (logit_stats.py).
LOGIT_STATS_HOOK = "ttrl.adapters.verl.setup.register_logit_stats"
ADVANTAGE_ESTIMATOR = "ttrl_grpo"  # the name batch.py registers in verl (batch.py imports torch)
#: Statistics ttrl's patch of verl's log-prob pass adds (logit_stats.FIELDS without importing torch).
LOGIT_STATS = frozenset({"token_self_certainty", "mean_self_certainty", "token_confidence", "mean_confidence"})
#: Token statistics verl's log-prob pass provides (batch.VERL_TOKEN_STATS without importing torch).
PROVIDED_STATS = frozenset({"token_entropy", "token_logprob", "mean_entropy", "mean_logprob", "num_tokens"}) | LOGIT_STATS
#: verl settings under which the patched method never sees the logits, and why.
LOGIT_STATS_CONFLICTS = {
    "actor_rollout_ref.model.use_remove_padding": (False, "verl then computes entropy outside the function ttrl wraps"),
    "actor_rollout_ref.model.use_fused_kernels": (True, "fused kernels never materialise the logits"),
}
LOGIT_STATS_STRATEGIES = ("fsdp", "fsdp2")


class VerlSettings(BaseModel):
    """What a user writes under ``verl:``. Defaults are TTRL's verl script (examples/ttrl/aime.sh)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Policy model: Hugging Face id or local directory (actor_rollout_ref.model.path).")
    train_files: str | list[str] = Field(description="Training prompts in verl's dataset format (parquet with prompt, reward_model.ground_truth).")
    val_files: str | list[str] | None = Field(None, description="Validation prompts, graded against their ground truth; default: the training files.")
    n_votes: int = Field(64, ge=2, description="Responses sampled per prompt, all of which vote (TTRL: 64).")
    n_train: int = Field(32, ge=2, description="Responses per prompt trained on (TTRL: 32).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of training rollouts (and of the token statistics).")
    val_temperature: float = Field(0.6, gt=0, description="Sampling temperature for validation.")
    val_top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling for validation.")
    val_n: int = Field(16, ge=1, description="Responses per validation prompt (mean@n, maj@n, best@n).")
    max_prompt_length: int = Field(512, ge=1, description="Prompt tokens (data.max_prompt_length).")
    max_response_length: int = Field(3072, ge=1, description="Response tokens (data.max_response_length).")
    train_batch_size: int = Field(8, ge=1, description="Prompts per training step (data.train_batch_size).")
    ppo_mini_batch_size: int = Field(1, ge=1, description="Prompts per optimizer update (verl multiplies by n_votes).")
    micro_batch_size_per_gpu: int = Field(2, ge=1, description="Responses per GPU forward/backward.")
    learning_rate: float = Field(5e-7, gt=0, description="Actor learning rate.")
    lr_scheduler: Literal["constant", "cosine"] = Field("cosine", description="Learning-rate schedule.")
    lr_warmup_steps_ratio: float = Field(0.03, ge=0, lt=1, description="Warm-up steps as a fraction of all steps.")
    use_kl_loss: bool = Field(True, description="KL loss against the reference model.")
    kl_loss_coef: float = Field(0.001, ge=0, description="KL loss coefficient.")
    total_epochs: int = Field(1, ge=1, description="Passes over the training prompts (trainer.total_epochs).")
    n_gpus_per_node: int = Field(8, ge=1, description="GPUs per node.")
    nnodes: int = Field(1, ge=1, description="Nodes.")
    test_freq: int = Field(2, description="Validate every this many steps (-1: never).")
    save_freq: int = Field(-1, description="Save a checkpoint every this many steps (-1: never).")
    logger: list[str] = Field(default_factory=lambda: ["console"], description="verl loggers: console, wandb, tensorboard, ...")
    project_name: str = Field("ttrl-verl", description="Logger project.")
    experiment_name: str = Field("ttrl", description="Logger run name.")
    output_dir: str = Field("./checkpoints/ttrl-verl", description="Checkpoints and the generated verl config (relative to the run config).")
    ray_address: str | None = Field(None, description="An existing Ray cluster to join; default: start one.")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other verl setting by its dotted key, e.g. {'actor_rollout_ref.rollout.gpu_memory_utilization': 0.8}.",
    )


#: verl keys ttrl derives from the settings above (or owns); an override would contradict them.
OWNED_KEYS = {
    "actor_rollout_ref.model.path": "model",
    "data.train_files": "train_files",
    "data.val_files": "val_files",
    "actor_rollout_ref.rollout.n": "n_votes",
    "actor_rollout_ref.rollout.temperature": "temperature",
    "actor_rollout_ref.rollout.val_kwargs.temperature": "val_temperature",
    "actor_rollout_ref.rollout.val_kwargs.top_p": "val_top_p",
    "actor_rollout_ref.rollout.val_kwargs.n": "val_n",
    "data.max_prompt_length": "max_prompt_length",
    "data.max_response_length": "max_response_length",
    "data.train_batch_size": "train_batch_size",
    "actor_rollout_ref.actor.ppo_mini_batch_size": "ppo_mini_batch_size",
    "actor_rollout_ref.actor.optim.lr": "learning_rate",
    "actor_rollout_ref.actor.use_kl_loss": "use_kl_loss",
    "actor_rollout_ref.actor.kl_loss_coef": "kl_loss_coef",
    "trainer.total_epochs": "total_epochs",
    "trainer.n_gpus_per_node": "n_gpus_per_node",
    "trainer.nnodes": "nnodes",
    "trainer.default_local_dir": "output_dir",
    "trainer.v1.trainer_mode": "(ttrl's trainer)",
    "trainer.use_v1": "(ttrl's trainer)",
    "algorithm.adv_estimator": f"(ttrl's {ADVANTAGE_ESTIMATOR})",
    "reward.custom_reward_function.path": "(ttrl's grader)",
    "reward.custom_reward_function.name": "(ttrl's grader)",
    "reward.custom_reward_function.reward_kwargs": "(the run config's answers: section)",
    "ray_kwargs.ray_init.runtime_env.worker_process_setup_hook": "(ttrl's setup hook)",
}
#: verl settings that cannot work with group-level estimation, and why.
REJECTED_KEYS = {
    "algorithm.filter_groups.enable": "it filters prompts by verl's per-sample scores, which are graded against the labels",
    "reward.reward_model.enable": "rewards come from the estimator, not a reward model",
    "algorithm.use_kl_in_reward": "ttrl's rewards are the estimator's; use use_kl_loss for a KL term",
}
#: Loss aggregations that count a masked (untrained) response in their denominator.
TRAINED_ONLY_LOSS_MODES = ("token-mean", "token-sum")


def check_version(*, required: bool = True) -> str | None:
    """The installed verl version; a :class:`UserError` when it is not 0.9.x, or missing and ``required``."""
    return check_trainer_version(
        "verl",
        SUPPORTED_SERIES,
        required=required,
        missing="trainer: verl needs verl 0.9.x, which is not installed. verl pins transformers<5.11, so give it "
        "its own environment: pip install 'ttrl[verl]' (on a GPU machine also vllm; see docs/verl.md).",
        why="it subclasses verl's v1 PPO trainer, whose internals change between releases",
    )


def _where(config: RunConfig, *path: Any) -> str:
    where = config.locate((SECTION, *path)) or config.locate((SECTION,))
    return f" ({where})" if where else ""


def load_settings(config: RunConfig) -> VerlSettings:
    """Phase-2 validation of the ``verl:`` section, errors pointing at file:line."""
    settings = load_section(config, SECTION, VerlSettings, needs="`model:` and `train_files:`", doc="docs/verl.md")
    if settings.n_train > settings.n_votes:
        raise OptionError(
            f"verl.n_train ({settings.n_train}) must not exceed n_votes ({settings.n_votes}){_where(config, 'n_train')}: "
            "the trained responses are a subset of the voting ones (TTRL: n_votes 64, n_train 32)."
        )
    if settings.ppo_mini_batch_size > settings.train_batch_size or settings.train_batch_size % settings.ppo_mini_batch_size:
        raise OptionError(
            f"verl.train_batch_size ({settings.train_batch_size}) must be a multiple of ppo_mini_batch_size "
            f"({settings.ppo_mini_batch_size}){_where(config, 'ppo_mini_batch_size')}: both count prompts."
        )
    for key, value in settings.overrides.items():
        at = _where(config, "overrides", key)
        if key in OWNED_KEYS:
            source = OWNED_KEYS[key]
            raise OptionError(
                f"verl.overrides.{key}{at} is set by ttrl "
                + (f"{source}; it cannot be overridden." if source.startswith("(") else f"from `verl.{source}`; set that instead.")
            )
        if key in REJECTED_KEYS and value not in (False, None):
            raise OptionError(f"verl.overrides.{key}{at} is not supported with ttrl estimators: {REJECTED_KEYS[key]}.")
        if key.startswith("ttrl."):
            raise OptionError(f"verl.overrides.{key}{at}: the ttrl section is generated from the run config's estimator.")
    mode = settings.overrides.get("actor_rollout_ref.actor.loss_agg_mode", "token-mean")
    if settings.n_train < settings.n_votes and mode not in TRAINED_ONLY_LOSS_MODES:
        raise OptionError(
            f"verl.overrides.actor_rollout_ref.actor.loss_agg_mode is {mode!r}{_where(config, 'overrides', 'actor_rollout_ref.actor.loss_agg_mode')}: "
            f"with n_train < n_votes ttrl masks the untrained responses, and only {', '.join(TRAINED_ONLY_LOSS_MODES)} "
            "leave masked responses out of the loss's denominator."
        )
    return settings


def resolve_paths(settings: VerlSettings, config: RunConfig, config_path: Path) -> VerlSettings:
    """Data files and the output folder relative to the run config's folder, made absolute."""
    base = Path(config_path).resolve().parent
    updates: dict[str, Any] = {}
    for key in ("train_files", "val_files"):
        value = getattr(settings, key)
        if value is None:
            continue
        files = [value] if isinstance(value, str) else list(value)
        resolved = []
        for i, name in enumerate(files):
            path = Path(name).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.exists():
                at = _where(config, key) if isinstance(value, str) else _where(config, key, i)
                raise UserError(f"verl.{key}: {path} does not exist{at}. Relative paths are read from the run config's folder.")
            resolved.append(str(path.resolve()))
        updates[key] = resolved
    updates["output_dir"] = str((base / Path(settings.output_dir).expanduser()).resolve())
    return settings.model_copy(update=updates)


def check_token_stats(needed: frozenset[str], config: RunConfig, settings: VerlSettings) -> None:
    """verl's log-prob pass gives entropy and log-probs, ttrl's patch of it self-certainty and token
    confidence (FSDP actor, logits materialised); nothing else."""
    missing = needed - PROVIDED_STATS
    name = config.estimator.name if config.estimator else "?"
    where = config.locate(("estimator", "name"))
    if missing:
        raise UserError(
            f"Estimator {name!r}" + (f" ({where})" if where else "") + f" needs {', '.join(sorted(missing))}, "
            "which the verl adapter does not compute (it gives the actor's entropy, log-probs, self-certainty "
            "and token confidence at the rollout temperature). Use trainer: openrlhf or trl."
        )
    if needed and settings.overrides.get("algorithm.rollout_correction.bypass_mode"):
        raise UserError(
            f"Estimator {name!r} needs token statistics from the actor's log-prob pass, which "
            f"algorithm.rollout_correction.bypass_mode skips{_where(config, 'overrides', 'algorithm.rollout_correction.bypass_mode')}."
        )
    logit_stats = sorted(needed & LOGIT_STATS)
    if not logit_stats:
        return
    because = f"Estimator {name!r} needs {', '.join(logit_stats)}, which ttrl computes inside verl's FSDP log-prob pass"
    for key, (value, why) in LOGIT_STATS_CONFLICTS.items():
        if key in settings.overrides and bool(settings.overrides[key]) == value:
            raise UserError(f"{because}; verl.overrides.{key}: {str(value).lower()}{_where(config, 'overrides', key)}: {why}.")
    strategy = settings.overrides.get("actor_rollout_ref.actor.strategy", "fsdp")
    if strategy not in LOGIT_STATS_STRATEGIES:
        raise UserError(
            f"{because}; verl.overrides.actor_rollout_ref.actor.strategy is {strategy!r}"
            f"{_where(config, 'overrides', 'actor_rollout_ref.actor.strategy')}: only {', '.join(LOGIT_STATS_STRATEGIES)} are supported."
        )


def setup_hook(needed: frozenset[str]) -> str:
    """The Ray setup hook of a run: verl's log-prob pass is patched only when the estimator needs it."""
    return LOGIT_STATS_HOOK if needed & LOGIT_STATS else SETUP_HOOK


def verl_values(
    settings: VerlSettings, grader_path: str, spec: dict[str, Any], config: RunConfig, *, hook: str = SETUP_HOOK
) -> dict[str, Any]:
    """Every verl key ttrl sets, by dotted name: TTRL's values from the settings, then ``overrides``."""
    total_len = settings.max_prompt_length + settings.max_response_length
    values: dict[str, Any] = {
        "actor_rollout_ref.model.path": settings.model,
        "data.train_files": settings.train_files,
        "data.val_files": settings.val_files if settings.val_files is not None else settings.train_files,
        "data.max_prompt_length": settings.max_prompt_length,
        "data.max_response_length": settings.max_response_length,
        "data.train_batch_size": settings.train_batch_size,
        "data.filter_overlong_prompts": True,
        "data.truncation": "error",
        "actor_rollout_ref.rollout.n": settings.n_votes,
        "actor_rollout_ref.rollout.temperature": settings.temperature,
        "actor_rollout_ref.rollout.val_kwargs.do_sample": True,
        "actor_rollout_ref.rollout.val_kwargs.temperature": settings.val_temperature,
        "actor_rollout_ref.rollout.val_kwargs.top_p": settings.val_top_p,
        "actor_rollout_ref.rollout.val_kwargs.n": settings.val_n,
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.gpu_memory_utilization": 0.8,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
        "actor_rollout_ref.rollout.max_model_len": total_len,
        "actor_rollout_ref.rollout.max_num_batched_tokens": total_len,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": settings.micro_batch_size_per_gpu,
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.model.use_remove_padding": True,
        "actor_rollout_ref.actor.ppo_mini_batch_size": settings.ppo_mini_batch_size,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": settings.micro_batch_size_per_gpu,
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": total_len,
        "actor_rollout_ref.actor.optim.lr": settings.learning_rate,
        "actor_rollout_ref.actor.optim.lr_scheduler_type": settings.lr_scheduler,
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio": settings.lr_warmup_steps_ratio,
        "actor_rollout_ref.actor.use_kl_loss": settings.use_kl_loss,
        "actor_rollout_ref.actor.kl_loss_coef": settings.kl_loss_coef,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": settings.micro_batch_size_per_gpu,
        "actor_rollout_ref.ref.fsdp_config.param_offload": True,
        "algorithm.adv_estimator": ADVANTAGE_ESTIMATOR,
        "algorithm.use_kl_in_reward": False,
        "reward.custom_reward_function.path": grader_path,
        "reward.custom_reward_function.name": "compute_score",
        "reward.custom_reward_function.reward_kwargs": {"answers": config.answers.model_dump(mode="json")},
        "trainer.use_v1": True,
        "trainer.v1.trainer_mode": TRAINER_MODE,
        "trainer.logger": list(settings.logger),
        "trainer.project_name": settings.project_name,
        "trainer.experiment_name": settings.experiment_name,
        "trainer.n_gpus_per_node": settings.n_gpus_per_node,
        "trainer.nnodes": settings.nnodes,
        "trainer.test_freq": settings.test_freq,
        "trainer.save_freq": settings.save_freq,
        "trainer.total_epochs": settings.total_epochs,
        "trainer.val_before_train": True,
        "trainer.default_local_dir": str(Path(settings.output_dir) / "ckpt"),
        "ray_kwargs.ray_init.runtime_env.worker_process_setup_hook": hook,
    }
    values.update(settings.overrides)
    values["ttrl"] = spec
    return values
