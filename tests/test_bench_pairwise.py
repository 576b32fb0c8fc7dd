"""Pairwise accuracy from ranks equals the N x N matrix definition of CONTRACT.md, value for value.

The definition: over all (correct, incorrect) pairs of a group, the correct rollout wins 1 when its
reward is higher and 1/2 when equal. The matrix below is that definition written out (what the
first version computed); ``pair_wins`` must give the same float on random, tie-heavy, degenerate
and large groups.
"""

from __future__ import annotations

import numpy as np
import pytest

from ttrl.core.metrics import pair_wins, score_group


def matrix_wins(rewards: np.ndarray, correct: np.ndarray, chunk: int = 2048) -> float:
    """The definition as an N x N comparison, in row chunks so that large N fits in memory."""
    pos, neg = rewards[correct], rewards[~correct]
    wins = ties = 0
    for start in range(0, pos.size, chunk):
        with np.errstate(invalid="ignore"):  # inf - inf
            diff = pos[start:start + chunk, None] - neg[None, :]
        wins += int(np.sum(diff > 0))
        ties += int(np.sum(diff == 0))
    return float(wins + 0.5 * ties)


def groups(seed: int):
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 8, 16, 64, 257):
        correct = rng.random(n) < rng.random()
        yield rng.normal(size=n), correct  # continuous: no ties
        yield rng.integers(0, 3, size=n).astype(float), correct  # tie-heavy: three values
        yield np.full(n, 0.5), correct  # all tied
        yield rng.integers(0, 2, size=n).astype(float), correct  # binary rewards, as majority vote gives
        yield np.round(rng.normal(size=n), 1) * 1e-3, correct  # close values, some equal


@pytest.mark.parametrize("seed", range(20))
def test_ranks_equal_the_matrix_on_random_and_tie_heavy_groups(seed):
    for rewards, correct in groups(seed):
        assert pair_wins(rewards, correct) == matrix_wins(rewards, correct)


def test_all_correct_all_incorrect_and_empty_groups_have_no_pairs():
    for correct in (np.ones(5, bool), np.zeros(5, bool), np.zeros(0, bool)):
        rewards = np.arange(correct.size, dtype=float)
        assert pair_wins(rewards, correct) == matrix_wins(rewards, correct) == 0.0


def test_non_finite_rewards_count_as_in_the_matrix():
    # inf - inf and anything - NaN are NaN: neither a win nor a tie; inf beats every number
    rewards = np.array([np.inf, np.inf, -np.inf, np.nan, 1.0, np.inf, -np.inf, np.nan, 1.0, 0.0])
    correct = np.array([True, True, True, True, True, False, False, False, False, False])
    assert pair_wins(rewards, correct) == matrix_wins(rewards, correct)


@pytest.mark.parametrize("n", [4096, 16_384])
def test_large_groups(n):
    rng = np.random.default_rng(n)
    correct = rng.random(n) < 0.4
    for rewards in (rng.normal(size=n), rng.integers(0, 50, size=n).astype(float)):
        assert pair_wins(rewards, correct) == matrix_wins(rewards, correct)


def test_score_group_pairs_from_ranks():
    # the hand-worked group a of test_bench_metrics: 2 correct x 4 incorrect, 0 wins and 2 ties = 1 win
    score = score_group([0, 0, 1, 1, 1, 0], [True, True, False, False, False, False],
                        label="2", label_correct=False, label_size=3)
    assert (score.pair_wins, score.pair_count) == (1.0, 8)
