"""Generating real rollouts: prompt loaders, the generation driver and its backends.

``ttrl rollouts generate`` (:mod:`ttrl.cli.rollouts`) is the command-line face of this package. The
backends need the ``torch`` extra (``transformers``) or vLLM and a GPU (``vllm``); they are imported
only when used.
"""

from .generation import DEFAULT_INSTRUCTION, GenerationSettings, GenerationSummary, run_generation
from .loaders import PromptItem, load_prompts

__all__ = [
    "DEFAULT_INSTRUCTION",
    "GenerationSettings",
    "GenerationSummary",
    "PromptItem",
    "load_prompts",
    "run_generation",
]
