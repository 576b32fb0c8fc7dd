"""Self-certainty (INTUITOR; Zhao et al., "Learning to Reason without External Rewards", arXiv:2505.19590, 2025).

The reward is the response's mean self-certainty, the KL divergence of each token's sampling
distribution p_t from the uniform distribution U over the vocabulary V:

    r_i = (1/T_i) Σ_t KL(U ‖ p_t),     KL(U ‖ p_t) = −log|V| − (1/|V|) Σ_j log p_t(j)

It is 0 for a uniform p_t and grows as p_t concentrates (up to ∞ as some p_t(j) → 0). The per-token values come with the rollouts (``stats.mean_self_certainty`` or ``token_self_certainty``,
from ``ttrl rollouts generate``), so |V| is not needed here.
"""

from __future__ import annotations

from ttrl.core.data import Estimate, RolloutGroup
from ttrl.core.hookspecs import hookimpl


def estimate_self_certainty(group: RolloutGroup, options: None) -> Estimate:
    """Mean KL(uniform ‖ p_t) over the response's tokens (INTUITOR)."""
    return Estimate([r.stat("mean_self_certainty") for r in group.rollouts], None, {})


@hookimpl
def register_estimators(register):
    register(
        "self_certainty",
        estimate_self_certainty,
        aliases=("intuitor",),
        requires=("mean_self_certainty",),
    )
