"""Built-in answer extractors: ``math`` (and its variants), ``multiple_choice`` and ``number``.

Registered through the same ``register_extractors`` hook third-party plugins use. The fallbacks of
``math`` are configured by choosing a variant: each variant is its own task name, so a rollout file
(``"task": "math_boxed"``) or a run config (``answers: {task: math_boxed}``) selects it. A plugin that
wants another combination builds it with :func:`ttrl.core.answers.extract.make_math_extractor`.
"""

from __future__ import annotations

from ttrl.core.answers.extract import extract_choice, extract_number_answer, make_math_extractor
from ttrl.core.hookspecs import hookimpl

extract_math = make_math_extractor()
extract_math_boxed = make_math_extractor(final_answer=False, answer_phrase=False, number=False)
extract_math_no_number = make_math_extractor(number=False)


@hookimpl
def register_extractors(register):
    register(
        "math",
        extract_math,
        compare="math",
        description='An answer statement after the last box, else the last \\boxed{} (boxes joined by "and" are a list), '
        'else "the answer is X", else the last expression of the concluding statement.',
    )
    register(
        "math_boxed",
        extract_math_boxed,
        compare="math",
        aliases=("boxed",),
        description="Only the last \\boxed{}/\\fbox{}: no fallbacks (TTRL's strict setting).",
    )
    register(
        "math_no_number",
        extract_math_no_number,
        compare="math",
        description='Box and answer statements as `math`; never an expression from the concluding statement.',
    )
    register(
        "number",
        extract_number_answer,
        compare="number",
        aliases=("gsm8k",),
        description="GSM8K-style number: after ####, boxed, \"the answer is\", else the last number; $ , % units dropped.",
    )
    register(
        "multiple_choice",
        extract_choice,
        compare="exact",
        aliases=("mc", "gpqa"),
        description='A-E letter: \\boxed{C}, "Answer: b", "the correct option is D", **C**, (C).',
    )
