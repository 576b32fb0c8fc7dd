"""Prompt loaders of ``ttrl rollouts generate``: the public sets in ../shared/data and ttrl's own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttrl.core.errors import DataFileError
from ttrl.rollouts.loaders import gsm8k_final_answer, load_prompts

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"public data not found at {SHARED}")


@needs_shared
def test_ttrl_json_aime_keeps_prompt_answer_and_prefixes_ids_with_the_file_name():
    prompts = load_prompts(SHARED / "ttrl" / "AIME-TTT.json")
    raw = json.loads((SHARED / "ttrl" / "AIME-TTT.json").read_text())
    assert len(prompts) == len(raw) == 30
    assert prompts[0].prompt == raw[0]["prompt"]
    assert prompts[0].reference == str(raw[0]["answer"])
    assert prompts[0].id == f"AIME-TTT/{raw[0]['id']}"
    assert prompts[0].task == "math"


@needs_shared
def test_ttrl_json_gpqa_is_multiple_choice():
    prompts = load_prompts(SHARED / "ttrl" / "GPQA-TTT.json")
    assert {p.task for p in prompts} == {"multiple_choice"}
    assert {p.reference for p in prompts} <= {"A", "B", "C", "D"}


@needs_shared
def test_gsm8k_jsonl_takes_the_number_after_the_hash_marks():
    prompts = load_prompts(SHARED / "gsm8k" / "test.jsonl")
    assert len(prompts) == 1319
    first = prompts[0]
    assert first.prompt.startswith("Janet")
    assert first.reference == "18"
    assert first.task == "number"
    assert len({p.id for p in prompts}) == 1319


def test_gsm8k_answer_drops_thousands_separators():
    assert gsm8k_final_answer("5 * 200 = 1,000\n#### 1,000") == "1000"
    assert gsm8k_final_answer("no marker") is None


def test_ttrl_rollout_file_reads_id_prompt_reference_and_task(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    path.write_text(
        json.dumps({"id": "q1", "prompt": "2+2?", "reference": "4", "task": "number", "rollouts": [{"text": "4"}]}) + "\n\n"
        + json.dumps({"id": "q2", "prompt": "Pick one", "answer": "B"}) + "\n",
        encoding="utf-8",
    )
    first, second = load_prompts(path)
    assert (first.id, first.prompt, first.reference, first.task) == ("q1", "2+2?", "4", "number")
    assert (second.id, second.reference, second.task) == ("q2", "B", "math")


def test_missing_file_says_which_path(tmp_path):
    with pytest.raises(DataFileError, match=r"missing\.jsonl does not exist"):
        load_prompts(tmp_path / "missing.jsonl")


def test_bad_json_line_is_reported_with_its_line_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": \n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"bad\.jsonl:2: not valid JSON"):
        load_prompts(path)


def test_unrecognised_line_lists_its_keys_and_the_expected_formats(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"text": "hello"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match=r"odd\.jsonl:1: unrecognised line \(keys: text\).*GSM8K"):
        load_prompts(path)


def test_duplicate_ids_are_refused_because_resume_relies_on_them(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', encoding="utf-8")
    with pytest.raises(DataFileError, match="duplicate prompt id 'a'"):
        load_prompts(path)


def test_binary_file_is_reported_as_not_utf8(tmp_path):
    path = tmp_path / "blob.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataFileError, match="not UTF-8"):
        load_prompts(path)
