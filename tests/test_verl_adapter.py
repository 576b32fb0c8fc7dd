"""The verl adapter driven through verl 0.9's real classes on CPU.

Real ``DataProto`` batches of real SmolLM2-135M responses (the built-in rollout set), tokenized by
SmolLM2's tokenizer; verl's own ``compute_advantage`` (legacy and v1 paths) with ttrl's estimator
registered in verl's registry; verl's own sequence-length balancing to reorder a multi-uid batch;
verl's trainer registry, reached from a process Ray starts with ttrl's setup hook.

verl pins transformers<5.11, so these tests run in their own environment (`make test-verl`, part of
`make test`); elsewhere they are skipped, and with TTRL_REQUIRE_VERL=1 a missing verl is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

if os.environ.get("TTRL_REQUIRE_VERL"):
    import verl  # noqa: F401  (make test-verl: verl must be there)
else:
    pytest.importorskip("verl", reason="verl lives in its own environment: make test-verl")

import torch
from verl import DataProto
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories
from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions

from ttrl.adapters.verl.batch import (
    ADVANTAGE_ESTIMATOR,
    apply_train_mask,
    register_advantage_estimator,
    score_batch,
    scored_by_ttrl,
    step_metrics,
    verl_fields,
)
from ttrl.core.config import RunConfig
from ttrl.core.groups import GroupEstimator, Response
from ttrl.core.plugins import default_plugins

REPO = Path(__file__).resolve().parents[1]
BUILTIN = REPO / "ttrl" / "data" / "builtin_rollouts.jsonl"
EXAMPLES = sorted((REPO / "examples" / "verl").glob("*.yaml"))


@pytest.fixture(scope="module")
def smollm2():
    from ttrl.models import load_causal_lm

    model, tokenizer, _ref = load_causal_lm("smollm2-135m")
    return model, tokenizer


def builtin_groups(count: int, size: int) -> list[dict]:
    groups = []
    with BUILTIN.open(encoding="utf-8") as lines:
        for line in lines:
            group = json.loads(line)
            group["rollouts"] = group["rollouts"][:size]
            groups.append(group)
            if len(groups) == count:
                break
    return groups


def estimator(name: str = "majority_vote", *, n_votes: int, n_train: int, **options) -> GroupEstimator:
    config = RunConfig.model_validate({"estimator": {"name": name, "options": options}})
    return GroupEstimator.from_config(config, default_plugins().registry, n_votes=n_votes, n_train=n_train, section="verl")


def make_batch(tokenizer, groups: list[dict]) -> tuple[DataProto, list[str]]:
    """A batch as verl's v1 trainer holds it: right-padded responses, response_mask, uid, ground truth,
    keys ``{uid}_{sample}_0``; each prompt's responses next to each other, as verl samples them."""
    ids, uids, truths, keys = [], [], [], []
    for g, group in enumerate(groups):
        for k, rollout in enumerate(group["rollouts"]):
            ids.append(tokenizer(rollout["text"], add_special_tokens=False).input_ids)
            uids.append(f"uid{g}")
            truths.append({"ground_truth": group["reference"], "style": "rule"})
            keys.append(f"uid{g}_{k}_0")
    width = max(len(x) for x in ids)
    responses = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        responses[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    data = DataProto.from_dict(
        tensors={"responses": responses, "response_mask": mask, "loss_mask": mask.clone()},
        non_tensors={"uid": np.array(uids, dtype=object), "reward_model": np.array(truths, dtype=object)},
    )
    return data, keys


def decoder(tokenizer):
    return lambda ids: tokenizer.decode(ids.tolist(), skip_special_tokens=True)


def balanced_order(data: DataProto, dp_size: int = 4) -> list[int]:
    """The permutation verl's ``_balance_batch`` applies: sequence-length-balanced partitions, one per rank."""
    workload = data.batch["response_mask"].sum(-1).tolist()
    partitions = get_seqlen_balanced_partitions(workload, k_partitions=dp_size, equal_size=True)
    return [i for part in partitions for i in part]


def balanced(data: DataProto, keys: list[str]) -> tuple[DataProto, list[str], list[int]]:
    """The batch (and its keys) as verl reorders it before the log-prob pass, and the permutation."""
    order = balanced_order(data)
    assert order != sorted(order)  # verl's balancing did move responses across groups
    return data.select_idxs(order), [keys[i] for i in order], order


# --- group-level estimation on a DataProto ----------------------------------------------------


def test_majority_vote_over_each_uid_with_reward_at_each_responses_last_token(smollm2):
    _model, tokenizer = smollm2
    groups = builtin_groups(4, 8)
    data, keys = make_batch(tokenizer, groups)
    est = estimator(n_votes=8, n_train=8)
    scores = score_batch(data, est, decoder(tokenizer), keys=keys)

    lengths = data.batch["response_mask"].sum(-1)
    for g, group in enumerate(groups):
        result = scores.results[f"uid{g}"]
        # the same group straight through the layer gives the same rewards
        alone = estimator(n_votes=8, n_train=8).estimate("alone", "", [Response(text=r["text"]) for r in group["rollouts"]])
        assert result.rewards == alone.rewards and result.label == alone.label
        for k in range(8):
            row = g * 8 + k
            last = int(lengths[row]) - 1
            assert scores.token_level_scores[row, last] == pytest.approx(result.rewards[k])
            assert scores.token_level_scores[row, :last].abs().sum() == 0
            assert scores.token_level_scores[row, last + 1 :].abs().sum() == 0
    assert bool(scores.train_mask.all())
    # some of these real groups agree with their label and some not: the rewards are not constant
    assert len({float(v) for v in scores.token_level_scores.sum(-1)}) == 2


def test_vote_over_n_votes_train_the_first_n_train_whatever_verls_balancing_did(smollm2):
    _model, tokenizer = smollm2
    groups = builtin_groups(6, 8)
    data, keys = make_batch(tokenizer, groups)
    est = estimator(n_votes=8, n_train=4)
    straight = score_batch(data, est, decoder(tokenizer), keys=keys)

    shuffled, shuffled_keys, order = balanced(data, keys)
    moved = score_batch(shuffled, est, decoder(tokenizer), keys=shuffled_keys)

    for position, row in enumerate(order):
        assert torch.equal(moved.token_level_scores[position], straight.token_level_scores[row])
        assert bool(moved.train_mask[position]) == bool(straight.train_mask[row])
        sample = int(keys[row].split("_")[1])
        assert bool(straight.train_mask[row]) == (sample < 4)  # the first n_train in sampling order
    for uid, result in straight.results.items():
        assert moved.results[uid].rewards == result.rewards


def test_advantages_normalised_over_the_trained_responses_in_verls_own_compute_advantage(smollm2):
    _model, tokenizer = smollm2
    register_advantage_estimator()
    data, keys, _order = balanced(*make_batch(tokenizer, builtin_groups(6, 8)))
    scores = score_batch(data, estimator(n_votes=8, n_train=4), decoder(tokenizer), keys=keys)
    apply_train_mask(data, scores)
    data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    with scored_by_ttrl():
        out = compute_advantage(data, adv_estimator=ADVANTAGE_ESTIMATOR, config={"norm_adv_by_std_in_grpo": True})
    advantages = out.batch["advantages"]
    mask = out.batch["response_mask"]
    reward = data.batch["token_level_scores"].sum(-1)
    for uid in set(data.non_tensor_batch["uid"]):
        rows = [i for i, u in enumerate(data.non_tensor_batch["uid"]) if u == uid]
        trained = [i for i in rows if scores.train_mask[i]]
        untrained = [i for i in rows if not scores.train_mask[i]]
        assert len(trained) == 4 and len(untrained) == 4
        values = reward[trained]
        expected = (values - values.mean()) / (values.std() + 1e-6)
        for i, e in zip(trained, expected):
            valid = mask[i].bool()
            assert torch.allclose(advantages[i][valid], torch.full((int(valid.sum()),), float(e)), atol=1e-6)
        for i in untrained:
            assert mask[i].sum() == 0 and advantages[i].abs().sum() == 0
            assert out.batch["loss_mask"][i].sum() == 0


def test_with_every_response_trained_ttrl_grpo_is_verls_grpo(smollm2):
    _model, tokenizer = smollm2
    register_advantage_estimator()
    data, keys = make_batch(tokenizer, builtin_groups(5, 8))
    scores = score_batch(data, estimator(n_votes=8, n_train=8), decoder(tokenizer), keys=keys)
    apply_train_mask(data, scores)
    data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    theirs = compute_advantage(data, adv_estimator="grpo", norm_adv_by_std_in_grpo=True).batch["advantages"].clone()
    with scored_by_ttrl():
        ours = compute_advantage_for_multi_trajectories(
            data, batch_keys=keys, adv_estimator=ADVANTAGE_ESTIMATOR, config={"norm_adv_by_std_in_grpo": True}
        ).batch["advantages"]
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert theirs.abs().sum() > 0


def test_ttrl_grpo_refuses_rewards_that_did_not_come_from_ttrls_trainer(smollm2):
    _model, tokenizer = smollm2
    register_advantage_estimator()
    data, _keys = make_batch(tokenizer, builtin_groups(2, 4))
    data.batch["token_level_rewards"] = torch.ones_like(data.batch["responses"], dtype=torch.float32)
    with pytest.raises(RuntimeError, match="graded against the dataset's labels"):
        compute_advantage(data, adv_estimator=ADVANTAGE_ESTIMATOR, config={})
    assert get_adv_estimator_fn(ADVANTAGE_ESTIMATOR).__module__ == "ttrl.adapters.verl.batch"


def test_padding_rows_and_unscoreable_groups_get_no_learning_signal(smollm2):
    _model, tokenizer = smollm2
    groups = builtin_groups(3, 4)
    groups[1]["rollouts"][2]["text"] = ""  # an empty response: no entropy to average
    data, keys = make_batch(tokenizer, groups)
    length = data.batch["responses"].shape[1]
    data.batch["entropy"] = torch.rand(len(keys), length)
    # a verl padding row (upsample_batch_to_divisible_size): own uid, empty response_mask
    pad = data.select_idxs([0])
    pad.non_tensor_batch["uid"] = np.array(["pad0"], dtype=object)
    pad.batch["response_mask"].zero_()
    batch = DataProto.concat([data, pad])
    est = estimator("entropy", n_votes=4, n_train=4)
    scores = score_batch(batch, est, decoder(tokenizer), keys=[*keys, "pad0_0_0"], padding=[False] * len(keys) + [True])
    assert set(scores.results) == {"uid0", "uid1", "uid2"}
    assert scores.results["uid1"].status == "failed"
    assert scores.train_mask.tolist() == [True] * 4 + [False] * 4 + [True] * 4 + [False]
    metrics = step_metrics(est)
    assert metrics["ttrl/failed_groups"] == 1 and metrics["ttrl/groups"] == 3
    assert all(name.startswith("ttrl/") for name in metrics)


def test_metrics_under_ttrl_prefix_include_label_and_trained_subset_accuracy(smollm2, capsys):
    _model, tokenizer = smollm2
    data, keys = make_batch(tokenizer, builtin_groups(8, 8))
    est = estimator(n_votes=8, n_train=4)
    score_batch(data, est, decoder(tokenizer), keys=keys)
    metrics = step_metrics(est)
    for name in ("label_accuracy", "reward_accuracy", "ground_truth_ratio", "trained_reward_accuracy",
                 "majority_ratio", "reward_mean", "groups"):
        assert f"ttrl/{name}" in metrics, name
    assert metrics["ttrl/groups"] == 8
    assert step_metrics(est)["ttrl/groups"] == 0  # one training step's worth, then reset

    # the way verl's v1 step hands them on: MetricsAggregator, then its Tracking logger (console here)
    from verl.trainer.ppo.v1.utils import MetricsAggregator
    from verl.utils.tracking import Tracking

    aggregator = MetricsAggregator()
    aggregator.add_step_metrics(metrics, sample_count=64)
    logged = aggregator.get_aggregated_metrics()
    assert {k: v for k, v in logged.items() if k.startswith("ttrl/")} == pytest.approx(metrics)
    Tracking(project_name="ttrl-test", experiment_name="metrics", default_backend=["console"]).log(data=logged, step=1)
    printed = capsys.readouterr().out
    assert "ttrl/label_accuracy:" in printed and "ttrl/trained_reward_accuracy:" in printed


def test_answer_only_estimators_read_no_token_statistics_from_verl():
    assert verl_fields(estimator(n_votes=8, n_train=4).stats_needed) == []
    assert verl_fields(estimator("dare", n_votes=8, n_train=4).stats_needed) == ["entropy"]
    assert verl_fields(estimator("self_certainty", n_votes=8, n_train=4).stats_needed) == ["ttrl_self_certainty"]


@pytest.mark.model
def test_entropy_from_verls_log_prob_pass_is_ttrls_token_entropy_at_the_rollout_temperature(smollm2):
    """verl's actor computes entropy and log-probs from logits / temperature over the response tokens;
    fed those, ttrl's entropy and dare estimators give what ttrl's own kernel gives from the same logits."""
    from verl.utils.torch_functional import entropy_from_logits, logprobs_from_logits

    from ttrl.token_stats import reference_token_statistics

    model, tokenizer = smollm2
    temperature = 0.7
    groups = builtin_groups(2, 4)
    data, keys = make_batch(tokenizer, groups)
    prompt_ids = [tokenizer(g["prompt"], add_special_tokens=False).input_ids for g in groups for _ in g["rollouts"]]
    entropy = torch.zeros(data.batch["responses"].shape, dtype=torch.float32)
    logprob = torch.zeros_like(entropy)
    reference = []
    with torch.no_grad():
        for row in range(len(keys)):
            n = int(data.batch["response_mask"][row].sum())
            response = data.batch["responses"][row, :n]
            ids = torch.tensor(prompt_ids[row] + response.tolist()).unsqueeze(0)
            logits = model(ids).logits[0, len(prompt_ids[row]) - 1 : -1]  # positions predicting the response
            scaled = logits / temperature
            entropy[row, :n] = entropy_from_logits(scaled)
            logprob[row, :n] = logprobs_from_logits(scaled, response)
            stats = reference_token_statistics(logits, tokens=response, temperature=temperature)
            reference.append({"token_entropy": stats.entropy.numpy(), "token_logprob": stats.logprob.numpy()})
    data.batch["entropy"], data.batch["old_log_probs"] = entropy, logprob
    for name in ("entropy", "dare"):
        est = estimator(name, n_votes=4, n_train=4)
        scores = score_batch(data, est, decoder(tokenizer), keys=keys)
        for g, group in enumerate(groups):
            responses = [Response(text=r["text"], token_stats=reference[g * 4 + k]) for k, r in enumerate(group["rollouts"])]
            expected = estimator(name, n_votes=4, n_train=4).estimate("ref", "", responses).rewards
            assert scores.results[f"uid{g}"].rewards == pytest.approx(expected, abs=1e-4)


# --- self-certainty and token confidence from verl's log-prob pass -----------------------------


def fsdp_engine(*, pad_to_length: bool = False):
    """verl's FSDP language-model engine for one rank without FSDP's process groups: the attributes
    its ``__init__`` sets that ``prepare_model_inputs`` / ``prepare_model_outputs`` read."""
    from verl.utils import torch_functional as verl_F
    from verl.workers.config import FSDPEngineConfig
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    engine = object.__new__(FSDPEngineWithLMHead)
    engine.engine_config = FSDPEngineConfig(pad_to_length=pad_to_length, pad_to_length_bucket=64, use_torch_compile=False)
    engine.pad_to_length, engine.pad_to_length_bucket = pad_to_length, 64
    engine.use_ulysses_sp = False
    engine.compute_entropy_from_logits = verl_F.entropy_from_logits
    return engine


def log_prob_pass(engine, model, sequences: list[list[int]], temperature: float, **flags) -> dict:
    """One micro-batch through verl's own ``prepare_model_inputs`` and ``prepare_model_outputs`` as the
    old-log-prob pass runs them (packed, no padding). The packed forward is SmolLM2's per sequence,
    concatenated: on GPU flash-attention's varlen kernel keeps packed sequences apart; on CPU, sdpa
    does not."""
    from tensordict import TensorDict
    from transformers.modeling_outputs import CausalLMOutputWithPast
    from verl.utils import tensordict_utils as tu

    micro = TensorDict(
        {"input_ids": torch.nested.as_nested_tensor([torch.tensor(s) for s in sequences], layout=torch.jagged),
         "position_ids": torch.nested.as_nested_tensor([torch.arange(len(s)) for s in sequences], layout=torch.jagged)},
        batch_size=[len(sequences)],
    )
    tu.assign_non_tensor(micro, temperature=temperature, use_remove_padding=True, calculate_entropy=True, **flags)
    inputs, output_args = engine.prepare_model_inputs(micro_batch=micro)
    packed = inputs["input_ids"][0]
    bounds = [0, *np.cumsum([len(s) for s in sequences]).tolist()]
    if bounds[-1] < len(packed):  # verl's static pad (pad_to_length): a run of its own
        bounds.append(len(packed))
    with torch.no_grad():
        logits = torch.cat([model(packed[a:b].unsqueeze(0)).logits[0] for a, b in zip(bounds, bounds[1:])])
    return engine.prepare_model_outputs(CausalLMOutputWithPast(logits=logits.unsqueeze(0)), output_args, micro, None)


def prompt_and_responses(tokenizer, groups: list[dict]) -> tuple[list[list[int]], list[int]]:
    """Each response's whole sequence (prompt + response tokens) and its response length."""
    sequences, lengths = [], []
    for group in groups:
        prompt = tokenizer(group["prompt"], add_special_tokens=False).input_ids
        for rollout in group["rollouts"]:
            response = tokenizer(rollout["text"], add_special_tokens=False).input_ids
            sequences.append(prompt + response)
            lengths.append(len(response))
    return sequences, lengths


@pytest.fixture(scope="module")
def logit_stats_installed():
    from ttrl.adapters.verl.logit_stats import install

    install()


@pytest.mark.model
@pytest.mark.parametrize("pad_to_length", [False, True], ids=["packed", "bucket-padded"])
def test_verls_log_prob_pass_gives_self_certainty_and_confidence_equal_to_ttrls_float64_reference(
    smollm2, logit_stats_installed, pad_to_length
):
    """verl's real prepare_model_inputs / prepare_model_outputs (patched) on SmolLM2's logits at the rollout
    temperature: self-certainty and top-20 confidence of every response token equal ttrl's float64
    reference within 1e-4 nats, and verl's own entropy and log-probs are what verl alone computes."""
    from verl.workers.utils.padding import response_from_nested

    from ttrl.adapters.verl.logit_stats import CONFIDENCE_K, FIELDS, REQUEST
    from ttrl.token_stats import reference_token_statistics

    model, tokenizer = smollm2
    temperature = 0.7
    sequences, lengths = prompt_and_responses(tokenizer, builtin_groups(2, 2))
    engine = fsdp_engine(pad_to_length=pad_to_length)
    request = {REQUEST: "token_confidence,token_self_certainty"}
    out = log_prob_pass(engine, model, sequences, temperature, **request)
    plain = log_prob_pass(engine, model, sequences, temperature)
    assert set(plain) == {"log_probs", "entropy"} and set(out) == {"log_probs", "entropy", *FIELDS.values()}
    for name in ("log_probs", "entropy"):
        assert torch.equal(out[name].values(), plain[name].values())
    mask = torch.nested.as_nested_tensor([torch.ones(n) for n in lengths], layout=torch.jagged)
    # the response part, cut out as verl's trainer cuts out its entropy (and ttrl's trainer these)
    responses = {name: response_from_nested(out[name], mask).unbind() for name in ("entropy", *FIELDS.values())}
    with torch.no_grad():
        for row, (sequence, n) in enumerate(zip(sequences, lengths)):
            logits = model(torch.tensor([sequence])).logits[0, len(sequence) - n - 1 : -1]  # predicting the response
            ref = reference_token_statistics(logits, temperature=temperature, confidence_k=CONFIDENCE_K)
            # verl's entropy (logsumexp - sum p x in float32) is off by up to ~3e-4 here: same positions,
            # its own rounding; ttrl's fields are within 1e-4 of the float64 reference
            for field, expected, tolerance in ((FIELDS["token_self_certainty"], ref.self_certainty, 1e-4),
                                               (FIELDS["token_confidence"], ref.confidence, 1e-4),
                                               ("entropy", ref.entropy, 5e-4)):
                got = responses[field][row].to(torch.float64)
                assert got.shape == (n,) and float((got - expected).abs().max()) < tolerance, field
    assert float(ref.self_certainty.mean()) > 0.5  # a real, peaked distribution, not a uniform one


def test_without_the_request_verls_pass_runs_unchanged_and_computes_nothing_of_ttrls(
    smollm2, logit_stats_installed, monkeypatch
):
    """The reference and update passes (and every pass of a run whose estimator needs only answers) call
    verl's own method: ttrl's kernel never runs, verl's entropy function is left in place."""
    import ttrl.token_stats

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("ttrl's kernel ran without a request")

    monkeypatch.setattr(ttrl.token_stats, "certainty_statistics", must_not_run)
    model, tokenizer = smollm2
    engine = fsdp_engine()
    entropy_fn = engine.compute_entropy_from_logits
    out = log_prob_pass(engine, model, prompt_and_responses(tokenizer, builtin_groups(1, 2))[0], 1.0)
    assert set(out) == {"log_probs", "entropy"} and engine.compute_entropy_from_logits is entropy_fn


def test_a_request_the_pass_cannot_serve_fails_loudly(smollm2, logit_stats_installed):
    """Asked for self-certainty in a pass that computes no entropy from the logits (calculate_entropy off,
    as in verl's reference pass), the patched method stops instead of returning verl's outputs alone."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu

    from ttrl.adapters.verl.logit_stats import REQUEST

    model, tokenizer = smollm2
    engine = fsdp_engine()
    sequence = prompt_and_responses(tokenizer, builtin_groups(1, 1))[0][0]
    micro = TensorDict({"input_ids": torch.nested.as_nested_tensor([torch.tensor(sequence)], layout=torch.jagged),
                        "position_ids": torch.nested.as_nested_tensor([torch.arange(len(sequence))], layout=torch.jagged)},
                       batch_size=[1])
    tu.assign_non_tensor(micro, temperature=1.0, use_remove_padding=True, calculate_entropy=False,
                         **{REQUEST: "token_self_certainty"})
    inputs, output_args = engine.prepare_model_inputs(micro_batch=micro)
    from transformers.modeling_outputs import CausalLMOutputWithPast

    with torch.no_grad():
        output = CausalLMOutputWithPast(logits=model(inputs["input_ids"]).logits)
    with pytest.raises(RuntimeError, match="did not compute the entropy"):
        engine.prepare_model_outputs(output, output_args, micro, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("rename", "no longer defines prepare_model_outputs"),
        ("signature", "is not prepare_model_outputs"),
        ("body", "no longer calls self.compute_entropy_from_logits"),
    ],
)
def test_the_patch_fails_loudly_when_verls_method_is_renamed_or_changed(monkeypatch, change, message):
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    from ttrl.adapters.verl.logit_stats import install

    if change == "rename":
        monkeypatch.delattr(FSDPEngineWithLMHead, "prepare_model_outputs")
    elif change == "signature":
        monkeypatch.setattr(FSDPEngineWithLMHead, "prepare_model_outputs", lambda self, output, micro_batch: {})
    else:
        def prepare_model_outputs(self, output, output_args, micro_batch, logits_processor_func):
            return {"entropy": self._gather_and_unpad_packed(output.logits, 0)}

        monkeypatch.setattr(FSDPEngineWithLMHead, "prepare_model_outputs", prepare_model_outputs)
    with pytest.raises(RuntimeError, match=message) as error:
        install()
    assert "FSDPEngineWithLMHead.prepare_model_outputs changed" in str(error.value) or change == "rename"
    assert "docs/verl.md" in str(error.value)


def test_answer_only_runs_leave_verls_log_prob_pass_unpatched(tmp_path):
    """The setup hook of a majority_vote run registers ttrl's trainer and patches nothing; only the
    hook of a self_certainty run wraps verl's method."""
    from ttrl.adapters.verl import plan
    from ttrl.core.config import load_run_config

    hooks = {}
    for name in ("majority_vote", "entropy", "self_certainty", "confidence_vote"):
        path = write_config(tmp_path, "", name)
        hooks[name] = plan(load_run_config(path), config_path=path)[1]["ray_kwargs.ray_init.runtime_env.worker_process_setup_hook"]
    assert hooks == {"majority_vote": "ttrl.adapters.verl.setup.register", "entropy": "ttrl.adapters.verl.setup.register",
                     "self_certainty": "ttrl.adapters.verl.setup.register_logit_stats",
                     "confidence_vote": "ttrl.adapters.verl.setup.register_logit_stats"}
    code = """
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead as E
from ttrl.adapters.verl import setup
def patched():
    return hasattr(E.__dict__["prepare_model_outputs"], "__ttrl_original__")
setup.register()
print(patched())
setup.register_logit_stats()
print(patched())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True"]


# --- registration in verl's processes ---------------------------------------------------------


def test_setup_hook_registers_ttrls_trainer_in_verls_trainer_registry():
    from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

    from ttrl.adapters.verl.setup import register

    register()
    cls = get_trainer_cls("ttrl")
    assert issubclass(cls, PPOTrainerSync) and cls.__name__ == "TTRLTrainer"
    assert "_compute_advantage" in cls.__dict__


def test_without_the_hook_verl_fails_loudly_instead_of_training_on_labels():
    code = "from verl.trainer.ppo.v1 import get_trainer_cls\nget_trainer_cls('ttrl')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Unknown trainer 'ttrl'" in result.stderr


@pytest.mark.slow
def test_a_process_ray_starts_with_the_generated_runtime_env_sees_the_trainer():
    """verl's TaskRunnerV1 looks the trainer up inside a Ray actor; the hook in the generated config's
    ``ray_kwargs.ray_init.runtime_env`` is what registers it there. A self_certainty run's hook also
    patches verl's log-prob pass in an actor started with its own ``env_vars``, as verl starts its
    FSDP workers (``RayWorkerGroup``)."""
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    code = f"""
import ray
from ttrl.adapters.verl.settings import LOGIT_STATS_HOOK
ray.init(num_cpus=1, include_dashboard=False, runtime_env={{"worker_process_setup_hook": LOGIT_STATS_HOOK}},
         _temp_dir={temp!r})

@ray.remote
class Probe:
    def run(self):
        from verl.trainer.ppo.core_algos import get_adv_estimator_fn
        from verl.trainer.ppo.v1 import get_trainer_cls
        from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
        patched = hasattr(FSDPEngineWithLMHead.__dict__["prepare_model_outputs"], "__ttrl_original__")
        return get_trainer_cls("ttrl").__name__, get_adv_estimator_fn("ttrl_grpo").__name__, patched

print(ray.get(Probe.options(runtime_env={{"env_vars": {{"WORLD_SIZE": "1"}}}}).remote().run.remote()))
ray.shutdown()
"""
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "('TTRLTrainer', 'ttrl_grpo_advantage', True)" in result.stdout


# --- ttrl train --dry-run and the fail-early checks ---------------------------------------------


def resolved(stdout: str) -> dict:
    return yaml.safe_load("\n".join(line for line in stdout.splitlines() if not line.startswith("#")))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_configs_dry_run_to_verls_resolved_configuration(run_ttrl, path, shared_data):
    result = run_ttrl("train", "--config", str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    cfg = resolved(result.stdout)
    example = yaml.safe_load(path.read_text(encoding="utf-8"))
    source = example["verl"]
    rollout = cfg["actor_rollout_ref"]["rollout"]
    actor = cfg["actor_rollout_ref"]["actor"]
    assert rollout["n"] == source["n_votes"] and cfg["ttrl"]["n_train"] == source["n_train"]
    assert rollout["temperature"] == source["temperature"]
    assert rollout["val_kwargs"]["temperature"] == source["val_temperature"] and rollout["val_kwargs"]["top_p"] == 0.95
    assert actor["optim"]["lr"] == source["learning_rate"] and actor["optim"]["lr_scheduler_type"] == source["lr_scheduler"]
    assert actor["use_kl_loss"] is True and actor["kl_loss_coef"] == source["kl_loss_coef"]
    assert cfg["data"]["max_response_length"] == source["max_response_length"]
    assert cfg["trainer"]["total_epochs"] == source["total_epochs"]
    assert cfg["trainer"]["v1"]["trainer_mode"] == "ttrl" and cfg["algorithm"]["adv_estimator"] == "ttrl_grpo"
    assert cfg["ttrl"]["run"]["estimator"]["name"] == example["estimator"]["name"]
    # verl's log-prob pass is patched only for the estimator that needs self-certainty
    hook = "register_logit_stats" if example["estimator"]["name"] == "self_certainty" else "register"
    assert cfg["ray_kwargs"]["ray_init"]["runtime_env"]["worker_process_setup_hook"] == f"ttrl.adapters.verl.setup.{hook}"
    assert Path(cfg["reward"]["custom_reward_function"]["path"]).name == "grader.py"
    assert cfg["model_engine"]  # the whole of verl's config, not only ttrl's keys
    assert not Path(cfg["trainer"]["default_local_dir"]).exists()  # nothing started, nothing written


def write_config(tmp_path: Path, verl: str, estimator_name: str = "majority_vote") -> Path:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([{"prompt": "What is 1+1?", "answer": "2"}]), encoding="utf-8")
    path = tmp_path / "run.yaml"
    path.write_text(
        f"trainer: verl\nestimator:\n  name: {estimator_name}\nverl:\n  model: Qwen/Qwen2.5-Math-1.5B\n"
        f"  train_files: prompts.json\n{verl}",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("verl", "estimator_name", "message", "line"),
    [
        ("  n_votes: 8\n  n_train: 16\n", "majority_vote", "must not exceed n_votes", 8),
        ("  overrides:\n    actor_rollout_ref.actor.optim.lrr: 1.0e-6\n", "majority_vote", "verl has no setting 'actor_rollout_ref.actor.optim.lrr'", 8),
        ("  overrides:\n    actor_rollout_ref.rollout.n: 8\n", "majority_vote", "set by ttrl from `verl.n_votes`", 8),
        ("  overrides:\n    algorithm.filter_groups.enable: true\n", "majority_vote", "graded against the labels", 8),
        ("  overrides:\n    actor_rollout_ref.actor.loss_agg_mode: seq-mean-token-mean\n", "majority_vote", "only token-mean, token-sum", 8),
        ("  temprature: 0.7\n", "majority_vote", "verl.temprature is not a known setting", 7),
        ("  overrides:\n    algorithm.rollout_correction.bypass_mode: true\n", "self_certainty", "bypass_mode skips", 8),
        ("  overrides:\n    actor_rollout_ref.model.use_fused_kernels: true\n", "self_certainty", "never materialise the logits", 8),
        ("  overrides:\n    actor_rollout_ref.model.use_remove_padding: false\n", "confidence_vote", "outside the function ttrl wraps", 8),
        ("  overrides:\n    actor_rollout_ref.actor.strategy: megatron\n", "self_certainty", "only fsdp, fsdp2", 8),
        ("  train_batch_size: 6\n  ppo_mini_batch_size: 4\n", "majority_vote", "multiple of ppo_mini_batch_size", 8),
    ],
)
def test_config_mistakes_fail_before_ray_naming_the_file_and_line(run_ttrl, tmp_path, verl, estimator_name, message, line):
    path = write_config(tmp_path, verl, estimator_name)
    result = run_ttrl("train", "--config", str(path), "--dry-run")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert f"{path}:{line}" in result.stderr
    assert "Traceback" not in result.stderr


def test_verls_own_checks_run_before_ray(run_ttrl, tmp_path):
    # 1 prompt x 6 responses cannot be split over 8 GPUs, which verl's validate_config checks
    path = write_config(tmp_path, "  n_votes: 6\n  n_train: 3\n  train_batch_size: 1\n")
    result = run_ttrl("train", "--config", str(path), "--dry-run")
    assert result.returncode == 2, result.stdout[-500:]
    assert "verl rejects the resolved configuration" in result.stderr and "divisible" in result.stderr
    assert f"{path}:5" in result.stderr


def test_ttrl_format_prompts_become_verl_rows_verls_dataset_reads(tmp_path, smollm2):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from ttrl.adapters.verl.data import plan_prompt_file, write_converted

    source = tmp_path / "AIME.json"
    source.write_text(json.dumps([{"prompt": "Find x.", "answer": "\\frac{1}{2}", "source": "aime24", "id": "a/1"},
                                  {"prompt": "Unlabeled: find y."}]))
    planned = plan_prompt_file(source, tmp_path / "out")
    assert planned.converted and not planned.target.exists()
    write_converted(planned, "train")
    row = json.loads(planned.target.read_text().splitlines()[0])
    assert row["prompt"] == [{"role": "user", "content": "Find x."}]
    assert row["reward_model"]["ground_truth"] == "\\frac{1}{2}" and row["data_source"] == "aime24"
    # verl's own dataset class reads it as it reads TTRL's parquet files
    _model, tokenizer = smollm2
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 64, "filter_overlong_prompts": True,
                               "truncation": "error", "return_raw_chat": True})
    dataset = RLHFDataset(data_files=[str(planned.target)], tokenizer=tokenizer, config=config)
    item = dataset[0]
    assert len(dataset) == 2 and item["reward_model"]["ground_truth"] == "\\frac{1}{2}"
    assert dataset[1]["reward_model"]["ground_truth"] is None  # label-free rows train all the same
    assert item["raw_prompt"] == [{"role": "user", "content": "Find x."}]


def test_verls_reward_loop_loads_ttrls_grader_from_the_generated_config(smollm2, tmp_path):
    """verl's own reward-manager loader on the resolved config: its naive manager with ttrl's grader,
    scoring real SmolLM2 responses against their ground truth (validation's acc)."""
    from verl.trainer.ppo.reward import load_reward_manager

    from ttrl.adapters.verl import plan
    from ttrl.adapters.verl.compose import compose_verl_config
    from ttrl.adapters.verl.grader import grade
    from ttrl.core.config import load_run_config

    _model, tokenizer = smollm2
    path = write_config(tmp_path, "")
    config = load_run_config(path)
    cfg = compose_verl_config(plan(config, config_path=path)[1], config)
    manager = load_reward_manager(cfg, tokenizer)
    assert type(manager).__name__ == "NaiveRewardManager"
    group = next(g for g in builtin_groups(100, 16) if any(grade(r["text"], g["reference"]) for r in g["rollouts"]))
    for rollout in group["rollouts"]:
        ids = torch.tensor(tokenizer(rollout["text"], add_special_tokens=False).input_ids).unsqueeze(0)
        prompt = torch.tensor([[1, 2, 3]])
        item = DataProto.from_dict(
            tensors={"prompts": prompt, "responses": ids, "attention_mask": torch.ones(1, 3 + ids.shape[1], dtype=torch.long)},
            non_tensors={"data_source": np.array(["arith"], dtype=object),
                         "reward_model": np.array([{"ground_truth": group["reference"]}], dtype=object),
                         "extra_info": np.array([{}], dtype=object)},
        )
        out = manager.loop.run_until_complete(manager.run_single(item))
        expected = grade(tokenizer.decode(ids[0].tolist(), skip_special_tokens=True), group["reference"])
        assert out["reward_score"] == expected and out["reward_extra_info"]["acc"] == expected


def test_grader_scores_equivalent_answers_for_validation():
    from ttrl.adapters.verl.grader import compute_score

    assert compute_score("aime24", "so $x = \\boxed{0.5}$", "\\frac{1}{2}") == {"score": 1.0, "acc": 1.0, "pred": "0.5"}
    assert compute_score("aime24", "so $x = \\boxed{3}$", "\\frac{1}{2}")["score"] == 0.0
    assert compute_score("aime24", "no answer at all", None) == {"score": 0.0, "acc": 0.0, "pred": ""}


# --- the trainer's step on verl's TransferQueue ------------------------------------------------


@pytest.fixture(scope="module")
def transfer_queue():
    """A local Ray instance with verl's TransferQueue (SimpleStorage), as verl's TaskRunnerV1 starts it."""
    import ray
    import transfer_queue as tq
    from omegaconf import OmegaConf

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"storage_backend": "SimpleStorage",
                                              "SimpleStorage": {"total_storage_size": 1000, "num_data_storage_units": 1}}}))
        yield tq
        tq.close()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def queue_step(tq, tokenizer, groups: list[dict], *, partition: str, fields=None):
    """A step's batch as verl's agent loop leaves it in the TransferQueue (keys ``{uid}_{sample}_0``, nested
    responses, balanced order, one padding row ``padx_0_0`` last); ``fields(row)`` adds per-sample fields.
    Returns the padded batch, its keys (without the padding row) and the ``KVBatchMeta``."""
    from transfer_queue import KVBatchMeta
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    data, keys = make_batch(tokenizer, groups)
    lengths = data.batch["response_mask"].sum(-1)
    size = len(groups[0]["rollouts"])
    samples = []
    for row in range(len(keys)):
        n = int(lengths[row])
        samples.append({
            "uid": data.non_tensor_batch["uid"][row],
            "prompts": torch.tensor(tokenizer(groups[row // size]["prompt"], add_special_tokens=False).input_ids),
            "responses": data.batch["responses"][row, :n],
            "response_mask": torch.ones(n, dtype=torch.int64),
            "loss_mask": torch.ones(n, dtype=torch.int64),
            "rm_scores": torch.ones(n),  # verl's per-sample (label-graded) score: must be replaced
            "old_log_probs": torch.zeros(n),
            "reward_model": data.non_tensor_batch["reward_model"][row],
            **(fields(row) if fields else {}),
        })
    padding = dict(samples[0], uid="padx", response_mask=torch.zeros_like(samples[0]["response_mask"]),
                   loss_mask=torch.zeros_like(samples[0]["loss_mask"]))
    samples.append(padding)
    all_keys = [*keys, "padx_0_0"]
    tags = [{"status": "success"} for _ in keys] + [{"status": "success", "is_padding": True}]
    order = balanced_order(data) + [len(keys)]
    tq.kv_batch_put(keys=[all_keys[i] for i in order], partition_id=partition,
                    fields=list_of_dict_to_tensordict([samples[i] for i in order]), tags=[tags[i] for i in order])
    return data, keys, KVBatchMeta(keys=[all_keys[i] for i in order], tags=[tags[i] for i in order], partition_id=partition)


@pytest.mark.slow
def test_trainer_step_scores_groups_from_transfer_queue_and_verl_computes_advantages(transfer_queue, smollm2, tmp_path):
    """TTRLTrainer._compute_advantage on a batch as verl's agent loop and log-prob pass leave it in the
    TransferQueue (keys ``{uid}_{sample}_0``, nested responses, balanced order, one padding row):
    rewards and the train mask written back, then verl's own v1 _compute_advantage."""
    from ttrl.adapters.verl import plan
    from ttrl.adapters.verl.compose import compose_verl_config
    from ttrl.adapters.verl.trainer import TTRLTrainer
    from ttrl.core.config import load_run_config

    tq = transfer_queue
    _model, tokenizer = smollm2
    path = write_config(tmp_path, "  n_votes: 8\n  n_train: 4\n  n_gpus_per_node: 1\n")
    config = load_run_config(path)
    _settings, values, _files = plan(config, config_path=path)
    cfg = compose_verl_config(values, config)

    groups = builtin_groups(3, 8)
    data, keys, batch = queue_step(tq, tokenizer, groups, partition="train")
    lengths = data.batch["response_mask"].sum(-1)
    keys = [*keys, "padx_0_0"]

    trainer = TTRLTrainer(cfg)  # verl's constructor: replay buffer, checkpoint callback; no workers, no GPU
    assert trainer.trainer_mode == "sync" and type(trainer.replay_buffer).__name__ == "ReplayBuffer"
    trainer.tokenizer = tokenizer  # what init() loads from the model path
    metrics: dict = {}
    trainer._compute_advantage(batch, metrics)

    stored = tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["advantages", "rm_scores", "response_mask"])
    advantages = stored["advantages"].to_padded_tensor(0.0)
    rm_scores = stored["rm_scores"].to_padded_tensor(0.0)
    mask = stored["response_mask"].to_padded_tensor(0)
    expected = score_batch(data, estimator(n_votes=8, n_train=4), decoder(tokenizer), keys=keys[:-1])
    for row in range(len(keys) - 1):
        n = int(lengths[row])
        trained = bool(expected.train_mask[row])
        assert trained == (int(keys[row].split("_")[1]) < 4)
        assert torch.equal(rm_scores[row, :n], expected.token_level_scores[row, :n])
        assert int(mask[row].sum()) == (n if trained else 0)
        if not trained:
            assert advantages[row].abs().sum() == 0
    for g in range(3):
        rows = [r for r in range(g * 8, g * 8 + 8) if expected.train_mask[r]]
        reward = expected.token_level_scores[rows].sum(-1)
        norm = (reward - reward.mean()) / (reward.std() + 1e-6)
        assert torch.allclose(advantages[rows, 0], norm, atol=1e-6)
    assert advantages[-1].abs().sum() == 0 and metrics["ttrl/groups"] == 3


@pytest.mark.slow
@pytest.mark.model
def test_trainer_step_hands_self_certainty_from_verls_log_prob_pass_to_the_estimator(
    transfer_queue, smollm2, tmp_path, logit_stats_installed
):
    """A self_certainty run's step: ttrl's trainer asks verl's own _compute_old_log_prob for the statistic
    (and only that pass), the patched pass's output (SmolLM2's logits through verl's real
    prepare_model_outputs) sits in the TransferQueue as the worker leaves it, and _compute_advantage
    hands each response's mean self-certainty to the estimator: its rewards are those of ttrl's float64
    reference within 1e-4."""
    from tensordict import TensorDict

    from ttrl.adapters.verl import plan
    from ttrl.adapters.verl.compose import compose_verl_config
    from ttrl.adapters.verl.logit_stats import REQUEST
    from ttrl.adapters.verl.trainer import TTRLTrainer
    from ttrl.core.config import load_run_config
    from ttrl.token_stats import reference_token_statistics

    tq = transfer_queue
    model, tokenizer = smollm2
    temperature = 0.7
    path = write_config(tmp_path, f"  n_votes: 4\n  n_train: 4\n  n_gpus_per_node: 1\n  temperature: {temperature}\n",
                        "self_certainty")
    config = load_run_config(path)
    cfg = compose_verl_config(plan(config, config_path=path)[1], config)
    groups = builtin_groups(3, 4)
    sequences, lengths = prompt_and_responses(tokenizer, groups)
    engine = fsdp_engine()
    passes = [log_prob_pass(engine, model, sequences[g * 4 : g * 4 + 4], temperature, **{REQUEST: "token_self_certainty"})
              for g in range(3)]
    whole = {name: [t for out in passes for t in out[name].unbind()] for name in ("log_probs", "entropy", "ttrl_self_certainty")}
    def rollout_log_probs(row):  # vLLM's, which verl compares with the actor's: here the actor's own
        sequence, n = whole["log_probs"][row], lengths[row]
        return {"rollout_log_probs": sequence[len(sequence) - n - 1 : -1]}

    data, keys, batch = queue_step(tq, tokenizer, groups, partition="train-self-certainty", fields=rollout_log_probs)
    key_rows = {key: row for row, key in enumerate(keys)} | {"padx_0_0": 0}

    class ActorWorkers:
        """Stands in for verl's Ray worker group: what its compute_log_prob leaves in the TransferQueue."""

        requests: list[dict] = []

        def compute_log_prob(self, meta):
            self.requests.append(dict(meta.extra_info))
            rows = [key_rows[key] for key in meta.keys]
            out = {name: torch.nested.as_nested_tensor([values[r] for r in rows], layout=torch.jagged)
                   for name, values in whole.items()}
            tq.kv_batch_put(keys=meta.keys, partition_id=meta.partition_id, fields=TensorDict(out, batch_size=len(rows)))
            return meta

    trainer = TTRLTrainer(cfg)
    trainer.tokenizer, trainer.actor_rollout_wg = tokenizer, ActorWorkers()
    metrics: dict = {}
    batch = trainer._compute_old_log_prob(batch, metrics)  # verl's own method, ttrl's request added
    (request,) = ActorWorkers.requests
    assert request[REQUEST] == "token_self_certainty" and request["calculate_entropy"] and request["temperature"] == temperature
    assert REQUEST not in batch.extra_info and "actor/entropy" in metrics
    trainer._compute_advantage(batch, metrics)

    stored = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id, select_fields=["rm_scores"])
    rm_scores = stored["rm_scores"].to_padded_tensor(0.0)
    with torch.no_grad():
        for g, group in enumerate(groups):
            responses = []
            for k, rollout in enumerate(group["rollouts"]):
                sequence, n = sequences[g * 4 + k], lengths[g * 4 + k]
                logits = model(torch.tensor([sequence])).logits[0, len(sequence) - n - 1 : -1]
                stats = reference_token_statistics(logits, temperature=temperature)
                responses.append(Response(text=rollout["text"], token_stats={"token_self_certainty": stats.self_certainty.numpy()}))
            expected = estimator("self_certainty", n_votes=4, n_train=4).estimate("ref", "", responses).rewards
            got = [float(rm_scores[g * 4 + k, lengths[g * 4 + k] - 1]) for k in range(4)]
            assert got == pytest.approx(expected, abs=1e-4)
            assert len(set(got)) == 4  # four different certainties, not a constant
    assert metrics["ttrl/groups"] == 3


def test_ttrl_style_validation_metrics_from_verls_own_validation_code():
    """verl's process_validation_metrics over the grader's scores of real SmolLM2 responses: mean@N
    (TTRL's pass@1 estimate), maj@N from the graded answers, best@N."""
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    from ttrl.adapters.verl.grader import compute_score

    groups = builtin_groups(6, 8)
    sources, uids, infos = [], [], {"acc": [], "pred": []}
    for g, group in enumerate(groups):
        for rollout in group["rollouts"]:
            out = compute_score("arith", rollout["text"], group["reference"], answers={"task": "math"})
            sources.append("arith")
            uids.append(f"u{g}")
            infos["acc"].append(out["acc"])
            infos["pred"].append(out["pred"])
    metrics = process_validation_metrics(sources, uids, infos)["arith"]["acc"]
    assert metrics["mean@8"] == pytest.approx(float(np.mean(infos["acc"])))
    assert "maj@8/mean" in metrics and "best@8/mean" in metrics


def test_gpu_end_to_end_script_dry_runs(tmp_path, shared_data):
    env = {**os.environ, "TTRL": str(Path(sys.executable).parent / "ttrl"), "OUT": str(tmp_path / "e2e")}
    result = subprocess.run(["bash", str(REPO / "examples" / "verl" / "gpu_end_to_end.sh"), "--dry-run"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    cfg = resolved(result.stdout)
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 8 and cfg["ttrl"]["n_train"] == 4
    assert cfg["trainer"]["total_training_steps"] == 3


def test_verls_own_entry_point_reads_the_generated_config(tmp_path):
    """The file `ttrl train` writes is what `python -m verl.trainer.main_ppo --config-path --config-name`
    composes (Hydra's --cfg job prints it and starts nothing), with the converted data in place."""
    from ttrl.adapters.verl import CONFIG_NAME, ENTRY_MODULE, plan, write_run_files
    from ttrl.adapters.verl.compose import compose_verl_config, to_yaml
    from ttrl.core.config import load_run_config

    path = write_config(tmp_path, "  output_dir: out\n")
    config = load_run_config(path)
    settings, values, prompt_files = plan(config, config_path=path)
    written = write_run_files(Path(settings.output_dir), to_yaml(compose_verl_config(values, config)), prompt_files)
    result = subprocess.run(
        [sys.executable, "-m", ENTRY_MODULE, f"--config-path={written.parent}", f"--config-name={CONFIG_NAME}", "--cfg", "job"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    cfg = yaml.safe_load(result.stdout)
    assert cfg["trainer"]["v1"]["trainer_mode"] == "ttrl" and cfg["ttrl"]["n_votes"] == 64
    train_file = Path(cfg["data"]["train_files"][0])
    assert train_file.parent == tmp_path / "out" / "data" and json.loads(train_file.read_text())["prompt"][0]["role"] == "user"
