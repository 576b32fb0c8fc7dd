"""One behaviour per class of input, in every command, through the real CLI in a subprocess.

Paths (an output that is the input, a missing folder, a folder where a file is wanted, a file where
a folder is wanted, an unwritable place), unusable files (JSON arrays, empty files, prompt files,
all lines malformed), lines that used to crash the reader or the writer, empty groups, ``TTRL_*``
variables, bench journals, Ctrl-C and progress.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "examples" / "rollouts" / "tiny.jsonl"
PROMPTS = REPO / "examples" / "rollouts" / "prompts.jsonl"
BUILTIN = REPO / "ttrl" / "data" / "builtin_rollouts.jsonl"

GOOD = {"id": "good/1", "prompt": "1+1?", "reference": "2",
        "rollouts": [{"text": "\\boxed{2}", "stats": {"mean_entropy": 0.2}},
                     {"text": "\\boxed{3}", "stats": {"mean_entropy": 0.9}}]}


def commands(data: Path, output: Path, report: Path | None = None) -> dict[str, list[str]]:
    """The same paths given to every command that reads a data file and writes an output."""
    bench = ["bench", "--data", str(data), "--estimators", "majority_vote", "--output", str(output)]
    if report is not None:
        bench += ["--report", str(report)]
    return {
        "estimate": ["estimate", "--data", str(data), "--estimator", "majority_vote", "--output", str(output)],
        "bench": bench,
        # a model that does not exist: the path check must come before any model is looked for
        "generate": ["rollouts", "generate", "--model", "no-such-model", "--data", str(data), "-n", "2",
                     "--output", str(output)],
    }


def user_error(result, *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr


# -- paths -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["estimate", "bench", "generate"])
def test_output_equal_to_data_is_refused_and_the_input_kept(run_ttrl, tmp_path, command):
    data = tmp_path / "rollouts.jsonl"
    data.write_bytes(TINY.read_bytes())
    # the same file under another spelling, and through a symlink
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(data)
    for output in (tmp_path / "sub" / ".." / "rollouts.jsonl", tmp_path / "link.jsonl"):
        args = commands(data, output)[command]
        user_error(run_ttrl(*args), "is the same file as --data", "would destroy the input")
        assert data.read_bytes() == TINY.read_bytes()


@pytest.mark.parametrize("command", ["estimate", "bench", "generate"])
def test_one_rule_for_output_paths_in_every_command(run_ttrl, tmp_path, command):
    cases = {
        tmp_path / "missing" / "out.jsonl": "does not exist. Create it first (mkdir -p",
        tmp_path: "is a folder; give a file name",
        Path("/proc/ttrl-cannot-write-here.jsonl"): "Cannot write in /proc",
    }
    for output, fragment in cases.items():
        user_error(run_ttrl(*commands(TINY, output)[command]), fragment)
    assert not (tmp_path / "missing").exists()


def test_report_path_that_is_a_file_is_refused_before_any_work(run_ttrl, tmp_path):
    report = tmp_path / "report.md"
    report.write_text("mine\n")
    start = time.monotonic()
    user_error(run_ttrl(*commands(TINY, tmp_path / "r.json", report)["bench"]), "--report", "is a file")
    assert report.read_text() == "mine\n" and not (tmp_path / "r.json").exists()
    user_error(run_ttrl("bench", "--estimators", "majority_vote", "--report", str(tmp_path / "no" / "dir")),
               "does not exist. Create it first")
    assert time.monotonic() - start < 60  # refused up front, not after benching the built-in set


# -- files -------------------------------------------------------------------------------------------

UNUSABLE = {
    "array": (json.dumps([GOOD, {**GOOD, "id": "good/2"}], indent=1), ["is a JSON array, not JSON Lines", "jq -c"]),
    "one-line-array": (json.dumps([GOOD]), ["is a JSON array", "Convert it with"]),
    "empty": ("", ["is empty", "ttrl rollouts generate"]),
    "blank": ("\n \n\n", ["is empty"]),
    "prompts": (PROMPTS.read_text(), ["looks like a prompt file", "ttrl rollouts generate --data"]),
    "gsm8k": (json.dumps({"question": "2+2?", "answer": "#### 4"}) + "\n", ["looks like a prompt file"]),
    "garbage": ("not json\n{also not\n", ["No line of", "2 malformed line(s)", ":1: not valid JSON"]),
    "only-empty-groups": (json.dumps({"id": "e", "prompt": "p", "rollouts": []}) + "\n", ["has no rollouts"]),
}


@pytest.mark.parametrize("kind", sorted(UNUSABLE))
@pytest.mark.parametrize("command", ["estimate", "bench"])
def test_unusable_files_say_what_they_look_like(run_ttrl, tmp_path, kind, command):
    text, fragments = UNUSABLE[kind]
    data = tmp_path / f"{kind}.jsonl"
    data.write_text(text, encoding="utf-8")
    output = tmp_path / "out.json"
    user_error(run_ttrl(*commands(data, output)[command]), *fragments)
    assert not output.exists()


#: Lines that crashed the reader or the writer, or were read as if they were fine.
HOSTILE = [
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("lone surrogate in id", json.dumps({**GOOD, "id": "x"}).replace('"x"', '"\\ud800"'), "lone UTF-16 surrogate"),
    ("lone surrogate in text", json.dumps({**GOOD, "id": "s", "rollouts": [{"text": "\\boxed{"}]}).replace(
        "\\\\boxed{", "\\\\boxed{\\udc00}"), "lone UTF-16 surrogate"),
    ("huge integer", json.dumps({**GOOD, "id": "h"}).replace('"2"', "9" * 5000), "too many digits"),
    ("NaN", json.dumps({**GOOD, "id": "n"}).replace("0.2", "NaN"), "finite number"),
    ("Infinity", json.dumps({**GOOD, "id": "i"}).replace("0.2", "-Infinity"), "finite number"),
    ("overflowing float", json.dumps({**GOOD, "id": "o"}).replace("0.2", "1e999"), "finite number"),
    ("not an object", json.dumps(["id", "prompt"]), "expected a JSON object"),
    ("bare string", json.dumps("hello"), "expected a JSON object"),
    ("duplicate id", json.dumps(GOOD), "duplicate id"),
    ("wrong type", json.dumps({**GOOD, "id": "w", "rollouts": [{"text": 7}]}), "valid string"),
    ("reference as boolean", json.dumps({**GOOD, "id": "b", "reference": True}), "reference"),
    ("bad UTF-8", b"\xc3\x28 broken", "not valid UTF-8"),
]


def hostile_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.jsonl"
    with path.open("wb") as handle:
        handle.write(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")  # a byte-order mark is read, not reported
        for _, line, _ in HOSTILE:
            handle.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
        handle.write(json.dumps({"id": "empty", "prompt": "p", "rollouts": []}).encode() + b"\n")
        handle.write(json.dumps({**GOOD, "id": "good/2"}, ensure_ascii=False).encode() + b"\n")
    return path


@pytest.mark.parametrize("command", ["estimate", "bench"])
def test_hostile_lines_are_reported_with_file_and_line_and_the_rest_is_read(run_ttrl, tmp_path, command):
    data = hostile_file(tmp_path)
    output = tmp_path / "out.json"
    result = run_ttrl(*commands(data, output)[command])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and ":1:" not in result.stderr
    for lineno, (what, _, fragment) in enumerate(HOSTILE, start=2):
        line = next((x for x in result.stderr.splitlines() if f"hostile.jsonl:{lineno}:" in x), "")
        assert line.startswith("Warning: skipped") and fragment in line, (what, result.stderr)
    assert f"Note: left out {data}:{len(HOSTILE) + 2}: group 'empty' has no rollouts" in result.stderr
    if command == "estimate":
        lines = [json.loads(x) for x in output.read_text(encoding="utf-8").splitlines()]
        assert [x["id"] for x in lines] == ["good/1", "good/2"]
    else:
        results = json.loads(output.read_text(encoding="utf-8"))
        assert results["data"]["groups"] == 2 and results["data"]["rollouts"] == 4


def test_empty_groups_are_left_out_of_the_metrics(run_ttrl, tmp_path):
    plain, with_empty = tmp_path / "plain.jsonl", tmp_path / "with_empty.jsonl"
    plain.write_text(json.dumps(GOOD) + "\n")
    with_empty.write_text(json.dumps(GOOD) + "\n" + json.dumps({"id": "e", "prompt": "p", "reference": "1", "rollouts": []}) + "\n")
    results = []
    for data in (plain, with_empty):
        out = tmp_path / f"{data.stem}.json"
        assert run_ttrl("bench", "--data", str(data), "--estimators", "majority_vote", "--output", str(out)).returncode == 0
        results.append(json.loads(out.read_text()))
    assert results[0]["data"] == {**results[1]["data"], "path": results[0]["data"]["path"]}
    assert results[0]["estimators"][0]["metrics"]["label_accuracy"] == results[1]["estimators"][0]["metrics"]["label_accuracy"] == 1.0


# -- environment -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, value, fragment", [
    ("TTRL_ANSWER_WORKERS", "two", "a whole number"),
    ("TTRL_ANSWER_WORKER_MEMORY_MB", "0", ">= 1"),
    ("TTRL_ANSWER_WORKER_STARTUP", "soon", "a number"),
    ("TTRL_DEBUG", "maybe", "1 or 0"),
    ("TTRL_STRICT_PLUGINS", "perhaps", "1 or 0"),
    ("TTRL_MODEL_CACHE", "nah", "1 or 0"),
])
def test_bad_environment_values_are_user_errors_even_for_help(run_ttrl, name, value, fragment):
    for args in (["--help"], ["estimators"]):
        user_error(run_ttrl(*args, env={name: value}), f"{name}={value!r}", fragment, f"unset {name}")


def test_unknown_ttrl_variable_gets_did_you_mean(run_ttrl):
    result = run_ttrl("--help", env={"TTRL_STRICT_PLUGIN": "1"})
    assert result.returncode == 0
    assert "TTRL_STRICT_PLUGIN is not one ttrl reads. Did you mean TTRL_STRICT_PLUGINS?" in result.stderr


def test_a_typo_in_load_plugins_names_the_plugin(run_ttrl, example_plugins_dir):
    result = run_ttrl("plugins", env={"TTRL_LOAD_PLUGINS": "ttrl-randm"}, pythonpath=[example_plugins_dir])
    user_error(result, "TTRL_LOAD_PLUGINS names 'ttrl-randm'", "Did you mean: ttrl-random")
    ok = run_ttrl("plugins", "--json", env={"TTRL_LOAD_PLUGINS": "ttrl-random"}, pythonpath=[example_plugins_dir])
    assert ok.returncode == 0 and {p["name"] for p in json.loads(ok.stdout) if not p["builtin"]} == {"random"}


def test_every_ttrl_variable_read_in_the_code_is_checked():
    from ttrl.core.env import VARIABLES

    names = set()
    for folder in ("core", "plugins", "adapters", "ttrl"):
        for path in (REPO / folder).rglob("*.py"):
            names |= set(re.findall(r"[\"'](TTRL_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    assert names - set(VARIABLES) == set(), "add these to ttrl.core.env.VARIABLES"


# -- journals ----------------------------------------------------------------------------------------

def test_a_rerun_does_not_silently_overwrite_an_unfinished_journal(run_ttrl, tmp_path):
    output = tmp_path / "results.json"
    journal = tmp_path / "results.json.partial.jsonl"
    journal.write_text('{"ttrl_bench_journal": 2, "fingerprint": "x"}\n')
    user_error(run_ttrl("bench", "--data", str(TINY), "--estimators", "majority_vote", "--output", str(output)),
               "holds the results of an unfinished run", "--resume", "delete")
    assert journal.read_text() == '{"ttrl_bench_journal": 2, "fingerprint": "x"}\n'


@pytest.mark.parametrize("line", ['{"shard": 0, "estim\x00', '[1, 2]', '{"shard": "0", "estimators": {}}', '{}'])
def test_a_corrupt_journal_line_under_resume_is_a_user_error(run_ttrl, tmp_path, line):
    output = tmp_path / "results.json"
    journal = tmp_path / "results.json.partial.jsonl"
    journal.write_text('{"ttrl_bench_journal": 2, "fingerprint": "x"}\n' + line + "\n")
    user_error(run_ttrl("bench", "--data", str(TINY), "--estimators", "majority_vote", "--output", str(output),
                        "--resume"), "results.json.partial.jsonl:2", "corrupt")


# -- interrupts and progress -------------------------------------------------------------------------

def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TTRL_")}, **extra}


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    """The built-in set five times over (500 groups, ids made unique): long enough to watch and interrupt."""
    data = tmp_path_factory.mktemp("big") / "big.jsonl"
    lines = BUILTIN.read_text(encoding="utf-8").splitlines()
    with data.open("w", encoding="utf-8") as handle:
        for copy in range(5):
            for line in lines:
                obj = json.loads(line)
                obj["id"] = f"{copy}/{obj['id']}"
                handle.write(json.dumps(obj) + "\n")
    return data


def test_ctrl_c_in_estimate_keeps_the_previous_output_and_says_so(tmp_path, big_file):
    data = big_file
    output = tmp_path / "estimates.jsonl"
    output.write_text("previous\n")
    proc = subprocess.Popen([sys.executable, "-m", "ttrl", "estimate", "--data", str(data), "--estimator",
                             "majority_vote", "--output", str(output)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".estimates.jsonl.*.tmp")):  # the atomic write has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Interrupted. Nothing was written to" in stderr and "Run the command again" in stderr
    assert "Traceback" not in stderr
    assert output.read_text() == "previous\n" and not list(tmp_path.glob(".estimates.jsonl.*"))


def _under_a_terminal(args: list[str], cwd: Path, timeout: float = 240) -> tuple[int, str]:
    """Run ttrl with stderr on a pseudo-terminal (where progress is shown); return its exit status and stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ttrl", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=slave, env=_env(TERM="xterm", COLUMNS="80"))
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("command", [
    ["estimate", "--estimator", "majority_vote", "--output", "e.jsonl"],
    ["bench", "--estimators", "majority_vote"],  # 500 groups in one shard: the bar moves within it
])
def test_long_work_shows_moving_progress(tmp_path, big_file, command):
    code, stderr = _under_a_terminal([*command, "--data", str(big_file)], tmp_path)
    assert code == 0, stderr
    counts = {int(n) for n in re.findall(r"\b(\d+)/500\b", stderr)}
    assert len({n for n in counts if 0 < n < 500}) >= 2, stderr[-2000:]


def test_short_work_stays_quiet(tmp_path):
    code, stderr = _under_a_terminal(["estimate", "--data", str(TINY), "--estimator", "majority_vote",
                                      "--output", "e.jsonl"], tmp_path)
    assert code == 0 and "/4" not in stderr and stderr.strip().startswith("Wrote 4 estimate(s)"), stderr


@pytest.mark.model
def test_ctrl_c_in_generate_says_what_is_saved_and_the_rerun_continues(tmp_path):
    pytest.importorskip("torch")
    output = tmp_path / "rollouts.jsonl"
    args = [sys.executable, "-m", "ttrl", "rollouts", "generate", "--data", str(PROMPTS), "-n", "2", "--batch-size", "2",
            "--max-new-tokens", "16", "--output", str(output)]
    env = _env(HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (output.exists() and output.read_text().count("\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert re.search(r"Using \d+ torch CPU thread\(s\) \(\d+ core\(s\), load average [\d.]+\)", stderr), stderr
    saved = int(re.search(r"Interrupted\. (\d) of 3 prompt\(s\) are saved in", stderr).group(1))
    assert "run the same command again" in stderr
    assert len(output.read_text().splitlines()) == saved
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"({saved} already there)" in again.stderr, again.stderr
    assert len(output.read_text().splitlines()) == 3


@pytest.mark.parametrize("command", ["estimate", "bench", "generate"])
def test_a_missing_or_folder_data_path_gets_the_same_answer(run_ttrl, tmp_path, command):
    user_error(run_ttrl(*commands(tmp_path / "missing.jsonl", tmp_path / "o.jsonl")[command]),
               "missing.jsonl does not exist. Check the path given to --data.")
    user_error(run_ttrl(*commands(tmp_path, tmp_path / "o.jsonl")[command]), "is a folder; pass a .jsonl file to --data")


def test_output_to_dev_null_is_written_in_place(run_ttrl):
    import stat

    result = run_ttrl("estimate", "--data", str(TINY), "--estimator", "majority_vote", "--output", "/dev/null")
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # not replaced by a regular file
