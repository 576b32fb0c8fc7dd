"""Real GRPO steps through TRL's GRPOTrainer on CPU with SmolLM2-135M: the estimator's rewards drive the update.

Each run is one optimizer step on 2 prompts x 4 completions of at most 10 tokens. What is checked:
the rewards TRL logged for those completions are the estimator's output, TRL's advantages follow them,
and the policy's parameters moved.
"""

from __future__ import annotations

import copy
import math
import os
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from ttrl.adapters.trl.run import build_trainer, problem_rows  # noqa: E402
from ttrl.adapters.trl.settings import installed_trl_version, prepare  # noqa: E402
from ttrl.core.config import load_run_config  # noqa: E402
from ttrl.core.data import Rollout, RolloutGroup  # noqa: E402
from ttrl.core.plugins import load_plugins  # noqa: E402
from ttrl.token_stats import reference_token_statistics  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.slow]

NUM_GENERATIONS = 4


@pytest.fixture(scope="module")
def smollm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ttrl.models import load_causal_lm

    return load_causal_lm("smollm2-135m")


def one_step(tmp_path, smollm, estimator: str):
    """Train one step on a fresh copy of the model; returns the trainer, its reward function and the run."""
    model, tokenizer, ref = smollm
    path = tmp_path / "run.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            trainer: trl
            estimator: {estimator}
            answers: {{task: number}}
            trl:
              problems: {{count: 2, seed: 0, levels: [1]}}
              heldout: null
              prompt_template: "{{prompt}} Answer with a number."
              num_generations: {NUM_GENERATIONS}
              prompts_per_step: 2
              max_steps: 1
              learning_rate: 1.0e-5
              temperature: 0.7
              max_completion_length: 10
              output_dir: {tmp_path / "out"}
              grpo_args: {{gradient_checkpointing: false}}
            """
        ),
        encoding="utf-8",
    )
    registry = load_plugins(entry_points=False).registry
    run = prepare(load_run_config(path), registry, config_path=path, trl_version=installed_trl_version())
    policy = copy.deepcopy(model)
    trainer, reward = build_trainer(run, policy, tokenizer, ref, problem_rows(tokenizer, run.settings, run.settings.problems))
    before = {name: p.detach().clone() for name, p in policy.named_parameters()}
    trainer.train()
    moved = max(float((p.detach() - before[name]).abs().max()) for name, p in policy.named_parameters())
    return trainer, reward, run, moved


def logged(trainer, name: str) -> list[float]:
    return [float(x) for x in trainer._logs["rewards"][name]]


def same(a: list[float | None], b: list[float]) -> bool:
    return all((x is None and math.isnan(y)) or (x is not None and x == pytest.approx(y, abs=1e-6)) for x, y in zip(a, b, strict=True))


def test_majority_vote_rewards_drive_the_grpo_update(tmp_path, smollm):
    trainer, reward, run, moved = one_step(tmp_path, smollm, "{name: majority_vote, options: {n_train: 3}}")

    (record,) = reward.history
    # what TRL logged for the 8 completions is what the estimator returned (None -> NaN: not trained on)
    assert same(record.trainer_rewards, logged(trainer, "ttrl_majority_vote"))
    assert [r is None for r in record.trainer_rewards] == [False, False, False, True] * 2

    # re-run the registered estimator on the completions TRL logged: same rewards
    completions = list(trainer._logs["completion"])
    majority_vote = run.pipeline.estimator
    engine = run.pipeline.engine
    for g in range(2):
        texts = completions[g * NUM_GENERATIONS : (g + 1) * NUM_GENERATIONS]
        group = RolloutGroup(id=f"g{g}", prompt="", rollouts=[Rollout(text=t) for t in texts], task="math")
        group.classes = engine.classify(group)
        expected = majority_vote.info.function(group, majority_vote.options).rewards
        assert expected == record.estimator_rewards[g * NUM_GENERATIONS : (g + 1) * NUM_GENERATIONS]

    # TRL's advantages follow the rewards: 0 outside the trained subset, signed by reward - group mean inside it
    advantages = [float(a) for a in trainer._logs["advantages"]]
    for g in range(2):
        block = slice(g * NUM_GENERATIONS, (g + 1) * NUM_GENERATIONS)
        rewards, adv = record.trainer_rewards[block], advantages[block]
        trained = [r for r in rewards if r is not None]
        mean = sum(trained) / len(trained)
        for r, a in zip(rewards, adv):
            if r is None or r == mean:
                assert a == 0.0
            else:
                assert (a > 0) == (r > mean)
    assert any(a != 0.0 for a in advantages), "no reward differences in this sample: nothing to learn from"
    assert moved > 0.0

    # the per-step metrics shared with the OpenRLHF path reached TRL's log
    logs = trainer.state.log_history[0]
    for name in ("label_accuracy", "reward_accuracy", "majority_ratio"):
        assert logs[f"ttrl/{name}"] == pytest.approx(record.metrics[name])


def test_self_certainty_is_computed_from_the_policys_logits_and_drives_the_update(tmp_path, smollm):
    trainer, reward, run, moved = one_step(tmp_path, smollm, "{name: self_certainty}")

    (record,) = reward.history
    assert same(record.estimator_rewards, logged(trainer, "ttrl_self_certainty"))

    # recompute each completion's mean KL(U || p_t) from the untrained model at the sampling temperature
    model, tokenizer, _ = smollm
    prompts = [row["prompt"] for row in problem_rows(tokenizer, run.settings, run.settings.problems)]
    for i, completion in enumerate(record.completion_ids):
        prompt_ids = tokenizer(text=[prompts[i // NUM_GENERATIONS]])["input_ids"][0]
        ids = torch.tensor([prompt_ids + completion])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
        stats = reference_token_statistics(logits, temperature=0.7)
        assert record.estimator_rewards[i] == pytest.approx(float(stats.self_certainty.mean()), rel=1e-4)

    assert len(set(record.estimator_rewards)) > 1
    assert any(float(a) != 0.0 for a in trainer._logs["advantages"])
    assert moved > 0.0
