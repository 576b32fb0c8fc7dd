"""The ``trl:`` section of a run config, and every check that must pass before training starts.

Phase 1 (:mod:`ttrl.core.config`) keeps ``trl:`` as a raw mapping; :func:`prepare` validates it with
:class:`TrlSettings`, resolves the estimator, and refuses the inputs the OpenRLHF path refuses (unknown
estimator, statistics this trainer cannot provide, ``n_train`` above the number of votes, an
unsupported TRL version) with errors that point at the YAML line. None of it imports torch or TRL.
"""

from __future__ import annotations

import difflib
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ttrl.core.config import GroupSettings, RunConfig, format_validation_error
from ttrl.core.errors import OptionError, UserError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.groups import TRAINER_INPUTS, bind_train_size
from ttrl.core.registry import ANSWERS, Registry

#: TRL releases whose GRPOTrainer behaves as this adapter relies on: reward functions get the dataset
#: columns and ``log_metric``, each prompt's generations are consecutive, and a ``None`` reward leaves
#: a completion out of its group's baseline with advantage 0.
SUPPORTED_TRL = ((1, 0), (2, 0))
#: Inputs this adapter computes for every completion (answers by extraction, the rest from the policy's logits).
PROVIDED_INPUTS = TRAINER_INPUTS


class ProblemSet(BaseModel):
    """Problems from :func:`ttrl.problems.generate_problems`."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(8, ge=1, description="How many problems.")
    seed: int = Field(0, description="Seed of the problem generator; the same seed gives the same problems.")
    levels: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1, description="Difficulty levels (1-3).")


class TrlSettings(BaseModel):
    """``trl:``: the model, the problems, and GRPO settings mapped onto TRL's ``GRPOConfig``.

    Defaults follow the TTRL paper where it has one (64 votes per prompt, peak learning rate 5e-7 with a
    cosine schedule, sampling temperature 1.0, 3072 new tokens); the CPU example overrides the sizes.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="Model name, directory or .gguf file (local files only).")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Policy weights' dtype.")
    problems: ProblemSet = Field(default_factory=ProblemSet, description="The unlabeled problems trained on.")
    heldout: ProblemSet | None = Field(
        default_factory=lambda: ProblemSet(count=16, seed=1),
        description="Held-out problems for pass@1 before and after training (greedy decoding); null skips it.",
    )
    prompt_template: str = Field(
        "{prompt}\nPut the final answer in \\boxed{{}}.",
        description="How a problem becomes the user message; {prompt} is the problem text.",
    )
    system_prompt: str | None = Field(None, description="System message; null keeps the chat template's default.")
    num_generations: int = Field(64, ge=2, description="Completions per prompt, all of which the estimator sees (TTRL votes over 64).")
    n_train: int | None = Field(
        None,
        ge=1,
        description="Train on this many of each prompt's num_generations completions (TTRL: 32 of 64); "
        "null trains on all. Passed to the estimator's own n_train option when it has one.",
    )
    prompts_per_step: int = Field(1, ge=1, description="Prompts per optimizer step.")
    max_steps: int = Field(10, ge=1, description="Optimizer steps.")
    learning_rate: float = Field(5e-7, gt=0, description="Peak learning rate (TTRL: 5e-7).")
    lr_scheduler_type: str = Field("cosine", description="transformers scheduler name (TTRL: cosine).")
    warmup_steps: float = Field(
        0, ge=0, description="Learning-rate warmup: a number of steps, or a fraction of all steps when below 1."
    )
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (TTRL: 1.0); token statistics use the same one.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    max_completion_length: int = Field(3072, ge=1, description="Maximum new tokens per completion (TTRL: 3072).")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the initial policy; 0 loads no reference model.")
    seed: int = Field(0, description="Seed for sampling and the data order.")
    output_dir: str = Field(
        "runs/trl",
        description="Where the summary (and the model, with save_model) go; relative to the run config's folder.",
    )
    save_model: bool = Field(False, description="Save the trained model to output_dir/model.")
    grpo_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Further GRPOConfig fields passed as they are (e.g. loss_type, scale_rewards, epsilon).",
    )

    @model_validator(mode="after")
    def _template_has_prompt(self) -> TrlSettings:
        if "{prompt}" not in self.prompt_template:
            raise ValueError("prompt_template must contain {prompt}")
        return self


#: GRPOConfig fields that TrlSettings owns: setting them in grpo_args would be ambiguous.
MANAGED_ARGS = {
    "num_generations": "num_generations",
    "learning_rate": "learning_rate",
    "lr_scheduler_type": "lr_scheduler_type",
    "warmup_steps": "warmup_steps",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_completion_length": "max_completion_length",
    "beta": "beta",
    "seed": "seed",
    "max_steps": "max_steps",
    "output_dir": "output_dir",
    "per_device_train_batch_size": "prompts_per_step",
    "gradient_accumulation_steps": "prompts_per_step",
    "generation_batch_size": "prompts_per_step",
    "steps_per_generation": "prompts_per_step",
}


@dataclass
class PreparedRun:
    """A validated run: settings, the estimation pipeline, and the keyword arguments for GRPOConfig."""

    settings: TrlSettings
    pipeline: EstimationPipeline
    grpo_kwargs: dict[str, Any]
    trl_version: str
    config_path: Path
    groups: GroupSettings = field(default_factory=GroupSettings)


def check_trl_version(version: str | None) -> str:
    """Refuse a TRL release outside :data:`SUPPORTED_TRL` (or none at all) before anything is loaded."""
    low, high = SUPPORTED_TRL
    wanted = f">={low[0]}.{low[1]},<{high[0]}.{high[1]}"
    if version is None:
        raise UserError(f"trainer: trl needs the trl package ({wanted}). Install it with `pip install 'ttrl[trl]'`.")
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    found = tuple(parts + [0] * (2 - len(parts)))
    if not (low <= found < high):
        raise UserError(
            f"trl {version} is installed, but the TRL adapter supports trl{wanted}: it relies on how that "
            f"GRPOTrainer calls reward functions and treats None rewards. Install a supported release with "
            f"`pip install 'trl{wanted}'`."
        )
    return version


def installed_trl_version() -> str | None:
    try:
        return importlib.metadata.version("trl")
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_settings(config: RunConfig) -> TrlSettings:
    """Phase 2 for ``trl:``; errors name the key and its file:line."""
    try:
        return TrlSettings.model_validate(config.trl)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, what="trl: section", locate=config.locate, prefix=("trl",))) from None


def _check_inputs(pipeline: EstimationPipeline, config: RunConfig) -> None:
    unknown = sorted(pipeline.requires - PROVIDED_INPUTS)
    if unknown:
        where = config.locate(("estimator", "name"))
        raise OptionError(
            f"Estimator {pipeline.estimator.name!r}" + (f" ({where})" if where else "")
            + f" needs {', '.join(unknown)}, which the TRL adapter cannot provide: it computes answers and the "
            f"token statistics {', '.join(sorted(PROVIDED_INPUTS - {ANSWERS}))} from the policy's logits. "
            "Choose an estimator that needs only these."
        )


def _grpo_kwargs(settings: TrlSettings, config: RunConfig) -> dict[str, Any]:
    batch = settings.prompts_per_step * settings.num_generations
    kwargs: dict[str, Any] = {
        "output_dir": settings.output_dir,
        "num_generations": settings.num_generations,
        # one generation batch per optimizer step: every prompt's whole group is generated, voted on and
        # trained on together, as in TTRL
        "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,
        "max_steps": settings.max_steps,
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "warmup_steps": settings.warmup_steps,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_completion_length": settings.max_completion_length,
        "beta": settings.beta,
        "seed": settings.seed,
        "bf16": settings.dtype == "bfloat16",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
    }
    for key, value in settings.grpo_args.items():
        if key in MANAGED_ARGS:
            where = config.locate(("trl", "grpo_args", key))
            raise OptionError(
                f"trl.grpo_args.{key}" + (f" ({where})" if where else "")
                + f" is set by ttrl; use trl.{MANAGED_ARGS[key]} instead."
            )
        kwargs[key] = value
    return kwargs


def check_grpo_fields(kwargs: dict[str, Any], fields: set[str], config: RunConfig) -> None:
    """Unknown ``grpo_args`` keys, with did-you-mean, against the installed GRPOConfig's fields."""
    for key in kwargs:
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            where = config.locate(("trl", "grpo_args", key))
            raise OptionError(
                f"trl.grpo_args.{key}" + (f" ({where})" if where else "") + " is not a GRPOConfig field of the "
                "installed trl." + (f" Did you mean {close[0]!r}?" if close else "")
            )


def prepare(config: RunConfig, registry: Registry, *, config_path: Path, trl_version: str | None) -> PreparedRun:
    """Every check that does not need torch: settings, estimator, inputs, vote split, TRL version."""
    settings = parse_settings(config)
    output = Path(settings.output_dir).expanduser()
    if not output.is_absolute():  # like every path in a run config: relative to the config's folder
        settings = settings.model_copy(update={"output_dir": str((Path(config_path).resolve().parent / output).resolve())})
    if config.estimator is None:
        raise OptionError(f"Run config {config_path} selects no estimator. Add `estimator: {{name: majority_vote}}`.")
    config = bind_train_size(
        config, registry, n_votes=settings.num_generations, n_train=settings.n_train, section="trl",
        votes_key="num_generations",
    )
    pipeline = EstimationPipeline.from_config(config, registry)
    _check_inputs(pipeline, config)
    version = check_trl_version(trl_version)
    return PreparedRun(settings, pipeline, _grpo_kwargs(settings, config), version, config_path, config.groups)
