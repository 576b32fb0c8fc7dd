"""Prompt files for verl: TTRL's JSON sets turned into verl's dataset rows.

verl's ``RLHFDataset`` reads parquet or JSON Lines rows of the form
``{"data_source", "prompt": [{"role": "user", "content": ...}], "reward_model": {"ground_truth": ...}, ...}``
(TTRL's own ``verl/data/preprocess.py`` writes the same fields). TTRL's data sets, as the project
keeps them, are a JSON array of ``{"prompt", "answer", "source", "id"}`` (only ``prompt`` is
required: label-free data has no answer). A file whose rows have a
string ``prompt`` is converted into ``<output_dir>/data/<name>.verl.jsonl`` when training starts;
parquet files and rows that already hold a message list are passed to verl unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttrl.core.errors import UserError


@dataclass(frozen=True, slots=True)
class PromptFile:
    source: Path
    #: What verl reads: ``source`` itself, or the converted file written by :func:`write_converted`.
    target: Path

    @property
    def converted(self) -> bool:
        return self.source != self.target


def _rows(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{number} is not valid JSON: {exc.msg}.") from None
        return rows
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno} is not valid JSON: {exc.msg}.") from None
    if not isinstance(rows, list):
        raise UserError(f"{path} must hold a JSON array of prompts ({{\"prompt\", \"answer\"}}), not a {type(rows).__name__}.")
    return rows


def verl_row(row: dict[str, Any], *, index: int, split: str, default_source: str) -> dict[str, Any]:
    """One TTRL row ``{"prompt", "answer", "source", "id"}`` as verl's dataset row."""
    source = str(row.get("source") or default_source)
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "ability": "math",
        # without an answer the prompt is still trained on (the estimator never sees labels); it is
        # only left out of the label metrics and scores 0 in validation
        "reward_model": {"style": "rule", "ground_truth": None if row.get("answer") is None else str(row["answer"])},
        "extra_info": {"split": split, "index": index, "id": str(row.get("id", f"{source}-{index}"))},
    }


def plan_prompt_file(path: Path, output_dir: Path) -> PromptFile:
    """Where verl will read ``path`` from; checks a TTRL-format file row by row before anything starts."""
    if path.suffix not in (".json", ".jsonl"):
        return PromptFile(path, path)
    rows = _rows(path)
    if not rows:
        raise UserError(f"{path} holds no prompts.")
    if all(isinstance(row, dict) and isinstance(row.get("prompt"), list) for row in rows):
        return PromptFile(path, path)  # already verl's message format
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise UserError(
                f"{path}: prompt {i} is not a {{\"prompt\": str, \"answer\": ...}} object (TTRL's format; the answer "
                "is optional) nor a verl row with a message list; fix that row or convert the file to verl's format."
            )
    return PromptFile(path, output_dir / "data" / f"{path.stem}.verl.jsonl")


def write_converted(prompt_file: PromptFile, split: str) -> None:
    """Write the verl rows of a TTRL-format file (nothing to do for files verl reads as they are)."""
    if not prompt_file.converted:
        return
    rows = _rows(prompt_file.source)
    prompt_file.target.parent.mkdir(parents=True, exist_ok=True)
    with prompt_file.target.open("w", encoding="utf-8") as out:
        for i, row in enumerate(rows):
            record = verl_row(row, index=i, split=split, default_source=prompt_file.source.stem)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
