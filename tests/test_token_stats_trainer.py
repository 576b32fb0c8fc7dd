"""Token statistics as trainers compute them: response positions only, one chunk of extra memory.

``response_token_stats`` is what the OpenRLHF and TRL adapters call on the policy's logits. The memory
test runs in a fresh process, resets its peak resident size (Linux ``/proc/self/clear_refs``) just
before the call and reads the peak (``VmHWM``) after it: torch's CPU allocations are invisible to
tracemalloc, and glibc is told to return large blocks to the system at once
(``MALLOC_MMAP_THRESHOLD_``) so that the peak is the peak of live memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from ttrl.core.data import TOKEN_FIELDS  # noqa: E402
from ttrl.token_stats import reference_token_statistics, response_token_stats  # noqa: E402


def test_statistics_of_each_rows_response_tokens_match_the_float64_reference():
    torch.manual_seed(0)
    logits = (torch.randn(3, 12, 50) * 4).to(torch.bfloat16)
    tokens = torch.randint(0, 50, (3, 12))
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[0, 2:9] = True  # a response in the middle (prompt before it, padding after)
    mask[1, 5:12] = True
    view = logits[:, :, :]
    out = response_token_stats(view, mask, tokens=tokens, temperature=0.7, chunk_size=3)
    for row in range(3):
        positions = mask[row].nonzero().flatten()
        ref = reference_token_statistics(logits[row, positions].float(), tokens=tokens[row, positions], temperature=0.7)
        assert set(out[row]) >= {"token_entropy", "token_self_certainty", "token_logprob"}
        assert set(out[row]) <= set(TOKEN_FIELDS)
        for name, expected in (("token_entropy", ref.entropy), ("token_self_certainty", ref.self_certainty),
                               ("token_logprob", ref.logprob)):
            assert out[row][name].shape == (len(positions),)
            assert out[row][name] == pytest.approx(expected.numpy(), abs=2e-4)
        # token confidence (DeepConf, k = 20 by default) flows through without naming it here
        logp = torch.log_softmax(logits[row, positions].double() / 0.7, dim=-1)
        confidence = -logp.topk(20, dim=-1).values.mean(-1)
        assert out[row]["token_confidence"] == pytest.approx(confidence.numpy(), abs=2e-4)
    # row 2 has no response tokens: empty arrays, so its means are missing rather than NaN
    assert all(len(values) == 0 for values in out[2].values())


def test_a_non_contiguous_view_of_the_logits_is_read_in_place():
    logits = torch.randn(2, 9, 16)
    view = logits[:, :-1][:, -7:]  # what an adapter slices out of the model's output
    mask = torch.ones(2, 7, dtype=torch.bool)
    a = response_token_stats(view, mask, temperature=1.0, chunk_size=2)
    b = response_token_stats(view.contiguous(), mask, temperature=1.0, chunk_size=2)
    for x, y in zip(a, b):
        assert x["token_entropy"] == pytest.approx(y["token_entropy"])
    assert "token_logprob" not in a[0]  # no sampled tokens given


PROBE = r"""
import json, sys, torch
from ttrl.token_stats import certainty_statistics, response_token_stats


def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
torch.set_num_threads(1)
batch, length, vocab, chunk = (int(v) for v in sys.argv[1:5])
kernel = sys.argv[5]
small = torch.randn(2, 9, 64, dtype=torch.bfloat16)  # warm up kernels and allocator paths
response_token_stats(small[:, :-1], torch.ones(2, 8, dtype=torch.bool), tokens=torch.zeros(2, 8, dtype=torch.long),
                     temperature=0.7, chunk_size=4)
certainty_statistics(small[0], confidence_k=20, chunk_size=4)
logits = torch.empty(batch, length + 1, vocab, dtype=torch.bfloat16).normal_()
view = logits[:, :-1]  # not contiguous: a reshape of it would copy all of it
mask = torch.zeros(batch, length, dtype=torch.bool)
mask[:, length // 4 : 3 * length // 4] = True  # prompt and padding positions around each response
tokens = torch.randint(0, vocab, (batch, length))
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident size (VmHWM) to the current one
except OSError as exc:
    print(json.dumps({"skip": f"cannot reset the peak resident size: {exc}"}))
    sys.exit(0)
before = status_kib("VmRSS")
if kernel == "response":
    response_token_stats(view, mask, tokens=tokens, temperature=0.7, chunk_size=chunk)
else:  # a trainer's packed [N, V] logits, already divided by its temperature (verl's log-prob pass)
    certainty_statistics(logits.view(-1, vocab), confidence_k=20, chunk_size=chunk)
peak = status_kib("VmHWM")
print(json.dumps({"extra_bytes": (peak - before) * 1024, "logits_bytes": logits.numel() * 2}))
"""


def peak_extra(batch: int, length: int, vocab: int, chunk: int, kernel: str = "response") -> dict:
    """``kernel``: ``response`` (response_token_stats on [B, T, V]) or ``certainty`` (certainty_statistics on
    the same logits packed to [B x T, V])."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(batch), str(length), str(vocab), str(chunk), kernel],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def test_extra_memory_is_one_chunk_whatever_the_batch():
    vocab, chunk = 32768, 64
    # one chunk's float32 working set: the chunk itself, log p, and p log p (ttrl.token_stats kernel)
    chunk_set = 3 * chunk * vocab * 4
    small = peak_extra(2, 1024, vocab, chunk)
    large = peak_extra(8, 1024, vocab, chunk)
    for run in (small, large):
        assert 0 < run["extra_bytes"] <= chunk_set + 8 * 2**20, run
    # 4x the logits (512 MiB of bf16), the same extra memory: nothing scales with batch x length
    assert large["extra_bytes"] <= small["extra_bytes"] + 8 * 2**20
    assert large["extra_bytes"] < large["logits_bytes"] / 20


def test_certainty_statistics_extra_memory_is_one_chunk_whatever_the_packed_length():
    """The kernel verl's patched log-prob pass runs on all of a micro-batch's packed positions."""
    vocab, chunk = 32768, 64
    # one chunk's float32 copy and logsumexp's temporary
    chunk_set = 2 * chunk * vocab * 4
    small = peak_extra(2, 1024, vocab, chunk, "certainty")
    large = peak_extra(8, 1024, vocab, chunk, "certainty")
    for run in (small, large):
        assert 0 < run["extra_bytes"] <= chunk_set + 8 * 2**20, run
    assert large["extra_bytes"] <= small["extra_bytes"] + 8 * 2**20
    assert large["extra_bytes"] < large["logits_bytes"] / 20
