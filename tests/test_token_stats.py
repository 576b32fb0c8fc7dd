"""Token statistics from logits: hand-worked distributions, the float64 reference, and top-K completion."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from ttrl.token_stats import (  # noqa: E402
    certainty_statistics,
    distribution_stats,
    reference_token_statistics,
    token_statistics,
    topk_token_statistics,
)


def test_uniform_distribution_has_entropy_log_v_and_zero_self_certainty():
    vocab = 1000
    logits = torch.full((3, vocab), 2.5)
    stats = token_statistics(logits, tokens=torch.tensor([0, 5, 999]))
    assert torch.allclose(stats.entropy, torch.full((3,), math.log(vocab)), atol=1e-5)
    assert torch.allclose(stats.self_certainty, torch.zeros(3), atol=1e-5)
    assert torch.allclose(stats.logprob, torch.full((3,), -math.log(vocab)), atol=1e-5)


def test_one_hot_like_distribution_has_near_zero_entropy_and_large_self_certainty():
    # One logit 60 above the others: p(peak) = 1/(1 + 3e^-60), the rest ~e^-60.
    vocab = 4
    logits = torch.tensor([[60.0, 0.0, 0.0, 0.0]])
    stats = token_statistics(logits, tokens=torch.tensor([[0]]).reshape(1))
    assert stats.entropy.item() == pytest.approx(0.0, abs=1e-12)
    # KL(U||p) = -log 4 - (1/4)(log p0 + 3 log p_rest) ~ -log 4 - (1/4)(0 - 180) = 45 - log 4
    assert stats.self_certainty.item() == pytest.approx(45.0 - math.log(4), rel=1e-6)
    assert stats.logprob.item() == pytest.approx(0.0, abs=1e-6)


def test_temperature_divides_the_logits():
    # Logits [log 1, log 3] at T=1 give p = (1/4, 3/4); at T=2 they are [0, log 3 / 2]: p ~ (0.366, 0.634).
    logits = torch.tensor([[0.0, math.log(3.0)]])
    hot = token_statistics(logits, tokens=torch.tensor([1]), temperature=2.0)
    p = torch.softmax(logits[0] / 2.0, dim=-1).double()
    assert hot.entropy.item() == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)
    assert hot.logprob.item() == pytest.approx(float(p[1].log()), abs=1e-6)
    cold = token_statistics(logits, tokens=torch.tensor([1]))
    assert cold.entropy.item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_matches_float64_reference_on_random_logits(dtype, temperature):
    generator = torch.Generator().manual_seed(0)
    logits = (torch.randn(2, 37, 5003, generator=generator) * 4).to(dtype)
    tokens = torch.randint(0, 5003, (2, 37), generator=generator)
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[1, 30:] = False  # padding after the second sequence's end
    stats = token_statistics(logits, tokens=tokens, mask=mask, temperature=temperature, chunk_size=16)
    # The reference sees the same (rounded) bf16/fp16 values, widened to float64.
    ref = reference_token_statistics(logits, tokens=tokens, temperature=temperature)
    for name in ("entropy", "self_certainty", "logprob", "confidence"):
        ours = getattr(stats, name).double()
        theirs = getattr(ref, name)
        assert torch.allclose(ours[mask], theirs[mask], atol=1e-4, rtol=0), name
        assert torch.all(ours[~mask] == 0), name


def test_confidence_is_minus_the_mean_top_k_log_prob():
    # p = (1/2, 1/4, 1/8, 1/8): C_2 = (log 2 + log 4) / 2 = 1.5 log 2; C_4 = (log 2 + 2 log 2 + 2 * 3 log 2) / 4
    logits = torch.tensor([[3.0, 2.0, 1.0, 1.0]]) * math.log(2)
    assert token_statistics(logits, confidence_k=2).confidence.item() == pytest.approx(1.5 * math.log(2), abs=1e-6)
    # k beyond |V| averages over the whole vocabulary
    assert token_statistics(logits, confidence_k=50).confidence.item() == pytest.approx(2.25 * math.log(2), abs=1e-6)
    # the default k is DeepConf's 20; None computes no confidence
    assert token_statistics(logits).confidence is not None
    assert token_statistics(logits, confidence_k=None).confidence is None
    # the temperature applies first: at T = 2 the logits halve
    hot = token_statistics(logits, confidence_k=1, temperature=2.0).confidence.item()
    assert hot == pytest.approx(-float(torch.log_softmax(logits[0] / 2, -1)[0]), abs=1e-6)
    with pytest.raises(ValueError, match="confidence_k"):
        token_statistics(logits, confidence_k=0)


def test_arrays_and_means_use_the_rollout_file_names():
    logits = torch.zeros(1, 3, 10)
    stats = token_statistics(logits, tokens=torch.zeros(1, 3, dtype=torch.long), confidence_k=4)
    assert set(stats.arrays()) == {"token_entropy", "token_self_certainty", "token_logprob", "token_confidence"}
    means = stats.means()
    assert means["mean_confidence"].item() == pytest.approx(math.log(10), abs=1e-6)  # uniform: every log p is -log 10
    assert "token_logprob" not in token_statistics(logits).arrays()


def test_masked_means_count_only_the_masked_tokens():
    logits = torch.zeros(2, 3, 10)  # uniform everywhere: entropy log 10 at every position
    mask = torch.tensor([[True, True, False], [False, False, False]])
    means = token_statistics(logits, mask=mask).means()
    assert means["num_tokens"].tolist() == [2, 0]
    assert means["mean_entropy"][0].item() == pytest.approx(math.log(10), abs=1e-6)
    assert math.isnan(means["mean_entropy"][1].item())
    assert "mean_logprob" not in means  # no sampled tokens given


def test_chunking_does_not_change_the_result():
    logits = torch.randn(50, 300, generator=torch.Generator().manual_seed(1))
    one = token_statistics(logits, chunk_size=1)
    many = token_statistics(logits, chunk_size=1000)
    assert torch.equal(one.entropy, many.entropy)
    assert torch.equal(one.self_certainty, many.self_certainty)


def test_certainty_statistics_of_logits_a_trainer_already_scaled_match_the_reference():
    """What verl's patched log-prob pass runs on its temperature-scaled logits: self-certainty and
    confidence only (verl computes the entropy), the same in any chunking, bf16 accepted."""
    logits = (torch.randn(37, 500, generator=torch.Generator().manual_seed(3)) * 6).to(torch.bfloat16)
    scaled = logits / 0.7
    ref = reference_token_statistics(logits.float(), temperature=0.7, confidence_k=20)
    out = certainty_statistics(scaled, confidence_k=20, chunk_size=5)
    assert set(out) == {"token_self_certainty", "token_confidence"}
    # bf16 input is read chunk by chunk in float32, as if converted first
    upcast = certainty_statistics(scaled.float(), confidence_k=20, chunk_size=5)
    assert all(torch.equal(out[name], upcast[name]) for name in out)
    exact = certainty_statistics(logits.float() / 0.7, confidence_k=20, chunk_size=5)
    assert exact["token_self_certainty"].double() == pytest.approx(ref.self_certainty.numpy(), abs=1e-4)
    assert exact["token_confidence"].double() == pytest.approx(ref.confidence.numpy(), abs=1e-4)
    whole = certainty_statistics(logits.float() / 0.7, confidence_k=20, chunk_size=1000)
    assert torch.equal(whole["token_self_certainty"], exact["token_self_certainty"])
    assert set(certainty_statistics(scaled)) == {"token_self_certainty"}  # no k: no confidence
    with pytest.raises(ValueError, match=r"\[N, V\]"):
        certainty_statistics(torch.zeros(2, 3, 4))


def test_bad_inputs_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="temperature"):
        token_statistics(torch.zeros(2, 3), temperature=0)
    with pytest.raises(ValueError, match=r"\[T, V\]"):
        token_statistics(torch.zeros(3))
    with pytest.raises(ValueError, match="mask shape"):
        token_statistics(torch.zeros(2, 3), mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="floating point"):
        token_statistics(torch.zeros(2, 3, dtype=torch.long))


def test_distribution_stats_returns_the_log_normalizer():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    assert distribution_stats(logits).log_normalizer.item() == pytest.approx(math.log(4))


# --- top-K completion (vLLM) -------------------------------------------------------------------


def _exact(logits: torch.Tensor) -> tuple[float, float]:
    ref = reference_token_statistics(logits.reshape(1, -1))
    return ref.entropy.item(), ref.self_certainty.item()


def test_topk_with_every_token_known_is_exact():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(2)).double()
    logp = torch.log_softmax(logits, -1)
    stats = topk_token_statistics(logp.tolist(), vocab_size=50)
    entropy, certainty = _exact(logits)
    assert stats.tail_mass == pytest.approx(0.0, abs=1e-12)
    assert stats.entropy == pytest.approx(entropy, abs=1e-9)
    assert stats.self_certainty == pytest.approx(certainty, abs=1e-9)


def test_topk_with_a_truly_uniform_tail_is_exact():
    # Two strong tokens and a flat tail of 998: completing the tail uniformly is then exactly right.
    logits = torch.zeros(1000, dtype=torch.float64)
    logits[0], logits[1] = 8.0, 6.0
    logp = torch.log_softmax(logits, -1)
    stats = topk_token_statistics(logp[:2].tolist(), vocab_size=1000)
    entropy, certainty = _exact(logits)
    assert stats.entropy == pytest.approx(entropy, abs=1e-9)
    assert stats.self_certainty == pytest.approx(certainty, abs=1e-9)


def test_topk_bounds_contain_the_exact_entropy_and_self_certainty_is_a_lower_bound():
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        logits = (torch.randn(5000, generator=generator) * 3).double()
        logp = torch.log_softmax(logits, -1)
        top = torch.topk(logp, 20).values
        stats = topk_token_statistics(top.tolist(), vocab_size=5000)
        entropy, certainty = _exact(logits)
        low, high = stats.entropy_bounds
        assert low - 1e-9 <= entropy <= high + 1e-9
        assert stats.self_certainty <= certainty + 1e-9
        assert 0 < stats.tail_mass < 1


def test_topk_confidence_is_exact_from_the_top_k_plus_the_sampled_token():
    generator = torch.Generator().manual_seed(4)
    logits = (torch.randn(5000, generator=generator) * 3).double()
    logp = torch.log_softmax(logits, -1)
    top = torch.topk(logp, 20).values
    exact = reference_token_statistics(logits.reshape(1, -1), confidence_k=20).confidence.item()
    # vLLM's dict holds the top 20 plus the sampled token when that one ranks lower
    given = [*top.tolist(), float(logp.min())]
    assert topk_token_statistics(given, vocab_size=5000, confidence_k=20).confidence == pytest.approx(exact, abs=1e-12)
    assert topk_token_statistics(given, vocab_size=5000).confidence is None


def test_topk_rejects_more_log_probs_than_the_vocabulary():
    with pytest.raises(ValueError, match="vocab_size"):
        topk_token_statistics([-0.1, -2.0, -3.0], vocab_size=2)


def test_accurate_on_logits_of_language_model_magnitude():
    """Real LM logits reach magnitudes ~30 with a few dominant tokens over a 49k vocabulary: there the
    form logZ - sum p x loses ~1e-3 nats in float32; the summed terms must stay within 1e-4."""
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 16, 49152, generator=generator) * 30
    logits[..., :5] += 90
    stats = token_statistics(logits, chunk_size=8)
    reference = reference_token_statistics(logits)
    assert (stats.entropy.double() - reference.entropy).abs().max() < 1e-4
    assert (stats.self_certainty.double() - reference.self_certainty).abs().max() < 1e-4
    assert (stats.confidence.double() - reference.confidence).abs().max() < 1e-4
