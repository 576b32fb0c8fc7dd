"""Rollout files (docs/formats.md): malformed lines are reported with file:line and skipped, unless strict."""

from __future__ import annotations

import json

import pytest

from ttrl.core.data import GroupRecord, Rollout, RolloutGroup
from ttrl.core.errors import DataFileError
from ttrl.core.rollout_files import read_rollout_file, record_to_json, write_rollout_file

GOOD = {"id": "g1", "prompt": "1+1?", "reference": 2, "rollouts": [
    {"text": "\\boxed{2}", "stats": {"num_tokens": 3, "mean_entropy": 0.5}, "token_entropy": [0.25, 0.75]},
    {"text": "\\boxed{3}", "answer": "3"}]}


def write_lines(tmp_path, lines):
    path = tmp_path / "rollouts.jsonl"
    with path.open("wb") as handle:
        for line in lines:
            handle.write(line if isinstance(line, bytes) else (line + "\n").encode())
    return path


def test_good_lines_are_read_and_bad_ones_reported(tmp_path):
    path = write_lines(tmp_path, [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"id": "g2", "prompt": "p", "rollouts": "oops"}),
        json.dumps({"id": "g3", "prompt": "p", "rollouts": [{"text": 7}]}),
        b"\xff\xfe bad bytes\n",
        "",
        json.dumps({**GOOD, "id": "g1"}),
        json.dumps({"id": "g4", "prompt": "p", "rollouts": []}),
    ])
    result = read_rollout_file(path)
    assert [r.group.id for r in result.records] == ["g1"]
    assert [str(e) for e in result.empty] == [f"{path}:8: group 'g4' has no rollouts"]  # left out, reported
    errors = [str(e) for e in result.errors]
    assert errors[0].startswith(f"{path}:2: not valid JSON")
    assert errors[1].startswith(f"{path}:3: group 'g2': rollouts: Input should be a valid list")
    assert errors[2].startswith(f"{path}:4: group 'g3': rollouts[0].text: Input should be a valid string")
    assert errors[3] == f"{path}:5: not valid UTF-8 (byte 0)"
    assert errors[4] == f"{path}:7: duplicate id 'g1' (first on line 1)"


def test_strict_mode_stops_at_the_first_bad_line(tmp_path):
    path = write_lines(tmp_path, [json.dumps(GOOD), "[]"])
    with pytest.raises(DataFileError, match=r":2: expected a JSON object, got list.*strict"):
        read_rollout_file(path, strict=True)


def test_fields_are_parsed_and_defaults_applied(tmp_path):
    record = read_rollout_file(write_lines(tmp_path, [json.dumps(GOOD)])).records[0]
    group = record.group
    assert record.reference == "2" and group.task == "math" and record.source.endswith(":1")
    first, second = group.rollouts
    assert first.stat("mean_entropy") == 0.5 and first.token_entropy.tolist() == [0.25, 0.75]
    assert second.answer == "3" and second.stat("mean_entropy") is None
    # a statistic missing from stats is derived from the per-token array when present
    assert Rollout(text="x", token_entropy=first.token_entropy).stat("mean_entropy") == 0.5


def test_the_group_estimators_receive_has_no_reference():
    assert "reference" not in RolloutGroup.__dataclass_fields__


def test_round_trip(tmp_path):
    records = read_rollout_file(write_lines(tmp_path, [json.dumps(GOOD)])).records
    out = tmp_path / "again.jsonl"
    write_rollout_file(out, records)
    again = read_rollout_file(out).records
    assert record_to_json(again[0]) == record_to_json(records[0])
    assert write_rollout_file(out, [GroupRecord(RolloutGroup(id="x", prompt="p", rollouts=[Rollout(text="t")]))], append=True) == 1
    assert len(read_rollout_file(out).records) == 2


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        read_rollout_file(tmp_path / "missing.jsonl")


def test_cli_warns_about_skipped_lines_and_strict_exits_2(run_ttrl, tmp_path):
    path = write_lines(tmp_path, [json.dumps(GOOD), "{broken"])
    out = tmp_path / "out.jsonl"
    result = run_ttrl("estimate", "--data", str(path), "--estimator", "majority_vote", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Warning: skipped {path}:2: not valid JSON" in result.stderr
    assert len(out.read_text().splitlines()) == 1
    strict = run_ttrl("estimate", "--data", str(path), "--estimator", "majority_vote", "--output", str(out), "--strict")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr and ":2:" in strict.stderr
