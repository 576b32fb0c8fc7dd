"""The TRL adapter's cheaper log-prob pass computes what TRL's own GRPOTrainer computes.

Real SmolLM2-135M, TRL's real trainer and kernel: the same left-padded batch (two prompts, repeated
as GRPO repeats them, completions of different lengths) goes through TRL's
``_get_per_token_logps_and_entropies`` and through the adapter's override; log-probs, entropies and
every parameter's gradient of a GRPO-shaped loss must agree to float32 rounding. Also: the cases the
fast path must leave to TRL, and the loud failure when TRL changes the method it overrides.
"""

from __future__ import annotations

import functools
import os

import pytest

torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")

from ttrl.adapters.trl import fastpath  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.slow]

GENERATIONS = 4
COMPLETION = 12


@pytest.fixture(scope="module")
def smollm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ttrl.models import load_causal_lm

    model, tokenizer, _ = load_causal_lm("smollm2-135m")
    return model, tokenizer


@pytest.fixture(scope="module")
def trainer(smollm, tmp_path_factory):
    from datasets import Dataset
    from trl import GRPOConfig

    model, tokenizer = smollm
    out = tmp_path_factory.mktemp("fastpath")
    args = GRPOConfig(
        output_dir=str(out), num_generations=GENERATIONS, per_device_train_batch_size=2 * GENERATIONS,
        max_completion_length=COMPLETION, temperature=0.7, report_to="none", gradient_checkpointing=False, bf16=False,
        max_steps=1,
    )
    cls = fastpath.fast_grpo_trainer_class()
    from ttrl.adapters.trl.run import trainable

    return cls(
        model=trainable(model), reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=args,
        train_dataset=Dataset.from_list([{"prompt": "1+1="}, {"prompt": "2+2="}]), processing_class=tokenizer,
    )


def grpo_batch(tokenizer):
    """Two prompts of different lengths, each repeated GENERATIONS times, left-padded as TRL pads them."""
    texts = ["Sam has 3 apples and buys 4 more. How many apples does Sam have?", "What is 7 + 5?"]
    prompts = [tokenizer(text=t)["input_ids"] for t in texts]
    width = max(map(len, prompts))
    rows = 2 * GENERATIONS
    prompt_ids = torch.full((rows, width), tokenizer.pad_token_id)
    prompt_mask = torch.zeros((rows, width), dtype=torch.long)
    for row in range(rows):
        p = prompts[row // GENERATIONS]
        prompt_ids[row, width - len(p) :] = torch.tensor(p)
        prompt_mask[row, width - len(p) :] = 1
    generator = torch.Generator().manual_seed(0)
    completion_ids = torch.randint(0, tokenizer.vocab_size, (rows, COMPLETION), generator=generator)
    completion_mask = torch.ones((rows, COMPLETION), dtype=torch.long)
    for row in range(rows):
        completion_mask[row, 2 + row :] = 0  # lengths 2..9: padding after each completion's end
    return torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1), completion_mask


def logps_and_grads(method, trainer, model, ids, mask, completion_mask):
    model.zero_grad(set_to_none=True)
    advantages = torch.linspace(-1.0, 1.0, ids.size(0)).unsqueeze(1)
    logps, entropies, _ = method(trainer, model, ids, mask, COMPLETION, compute_entropy=True)
    tokens = completion_mask.sum()
    # the policy term and an entropy bonus: both the log-prob and the entropy gradients are exercised
    loss = -(logps * advantages * completion_mask).sum() / tokens - 0.01 * (entropies * completion_mask).sum() / tokens
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return logps.detach(), entropies.detach(), grads


@pytest.mark.parametrize("checkpointing", [False, True], ids=["shared-prompt", "checkpointed"])
def test_same_logprobs_entropies_and_gradients_as_trl(trainer, smollm, checkpointing):
    from trl import GRPOTrainer

    model, tokenizer = smollm
    ids, mask, completion_mask = grpo_batch(tokenizer)
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable()
    try:
        expected = logps_and_grads(GRPOTrainer._get_per_token_logps_and_entropies, trainer, model, ids, mask, completion_mask)
        got = logps_and_grads(type(trainer)._get_per_token_logps_and_entropies, trainer, model, ids, mask, completion_mask)
    finally:
        model.gradient_checkpointing_disable()
    valid = completion_mask.bool()
    assert torch.allclose(got[0][valid], expected[0][valid], atol=2e-4)
    assert torch.allclose(got[1][valid], expected[1][valid], atol=2e-4)
    assert (got[0][~valid] == 0).all() and (got[1][~valid] == 0).all()
    assert set(got[2]) == set(expected[2]) and len(got[2]) > 100
    for name, grad in expected[2].items():
        scale = float(grad.norm())
        assert scale > 0, name
        assert float((got[2][name] - grad).norm()) <= 1e-3 * scale, name


def backbone_calls(model, monkeypatch) -> list[tuple[int, ...]]:
    """The ``input_ids`` shape of every backbone call from now on (the test's monkeypatch undoes it)."""
    seen = []
    original = type(model.base_model).forward

    @functools.wraps(original)  # keeps the signature the fast path inspects
    def spy(self, *args, **kwargs):
        seen.append(tuple(kwargs["input_ids"].shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model.base_model), "forward", spy)
    return seen


def test_shared_prompt_pass_runs_each_prompt_once(trainer, smollm, monkeypatch):
    """The cost claim itself: the backbone sees the 2 distinct prompts once each, not 2 x GENERATIONS rows."""
    model, tokenizer = smollm
    ids, mask, _ = grpo_batch(tokenizer)
    seen = backbone_calls(model, monkeypatch)
    with torch.no_grad():
        fastpath.completion_logprobs(model, ids, mask, COMPLETION, temperature=0.7, compute_entropy=False)
    prompt_len = ids.size(1) - COMPLETION
    assert seen == [(2, prompt_len), (2 * GENERATIONS, COMPLETION)]


def test_prompts_differing_only_in_padding_are_not_shared():
    ids = torch.tensor([[0, 5, 6], [5, 5, 6], [0, 5, 6]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1]])
    first, inverse = fastpath.shared_prompts(ids, mask)
    assert inverse[0] == inverse[2] != inverse[1]
    assert sorted(first.tolist()) == [0, 1]
    # the same tokens with different padding masks are different prompts
    _, inverse = fastpath.shared_prompts(torch.tensor([[5, 6], [5, 6]]), torch.tensor([[1, 1], [0, 1]]))
    assert inverse[0] != inverse[1]


def test_models_it_cannot_vouch_for_go_through_trl(trainer, smollm, monkeypatch):
    from trl import GRPOTrainer

    model, tokenizer = smollm
    ids, mask, _ = grpo_batch(tokenizer)
    calls = []

    def base(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False,
             compute_aux_loss=False, **extra):
        calls.append(compute_aux_loss)
        return torch.zeros(1), None, None

    wrapper = torch.nn.Module()  # e.g. a DDP/DeepSpeed wrapper: not a PreTrainedModel
    assert not fastpath.eligible(wrapper)
    assert fastpath.eligible(model)
    monkeypatch.setattr(model.config, "final_logit_softcapping", 30.0, raising=False)
    assert not fastpath.eligible(model)
    monkeypatch.undo()
    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", base)
    cls = fastpath.fast_grpo_trainer_class()
    cls._get_per_token_logps_and_entropies(trainer, wrapper, ids, mask, COMPLETION)
    cls._get_per_token_logps_and_entropies(trainer, model, ids, mask, COMPLETION, compute_aux_loss=True)
    cls._get_per_token_logps_and_entropies(trainer, model, ids, mask, COMPLETION, pixel_values=torch.zeros(1))
    assert calls == [False, True, False]


def test_a_changed_trl_signature_fails_loudly(monkeypatch):
    from trl import GRPOTrainer

    def changed(self, model, input_ids, attention_mask, logits_to_keep, compute_entropy=False):
        raise AssertionError("never called")

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", changed)
    with pytest.raises(RuntimeError, match="has changed its arguments"):
        fastpath.fast_grpo_trainer_class()


@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
def test_shared_prefill_generates_what_generate_generates(smollm, sample):
    """The same rows, the same generation config and seed: the same completions, token for token."""
    model, tokenizer = smollm
    ids, mask, _ = grpo_batch(tokenizer)
    prompt_len = ids.size(1) - COMPLETION
    ids, mask = ids[:, :prompt_len], mask[:, :prompt_len]
    settings = dict(max_new_tokens=10, do_sample=sample, temperature=0.7, top_k=0, top_p=1.0,
                    pad_token_id=tokenizer.pad_token_id)
    model.eval()
    outputs = []
    for fn in (model.generate, functools.partial(fastpath.shared_prefix_generate, model, model.generate)):
        torch.manual_seed(3)
        with torch.no_grad():
            outputs.append(fn(input_ids=ids, attention_mask=mask, **settings))
    model.train()
    assert outputs[0].shape == outputs[1].shape
    assert torch.equal(outputs[0], outputs[1])
    if sample:  # the 4 rows of a prompt are different samples, not 4 copies of one
        assert len({tuple(row.tolist()) for row in outputs[1][:GENERATIONS, prompt_len:]}) > 1


def test_trainer_generation_prefills_each_prompt_once(trainer, smollm, monkeypatch):
    model, tokenizer = smollm
    seen = backbone_calls(model, monkeypatch)
    prompts = [tokenizer(text="What is 2 + 2?")["input_ids"]] * GENERATIONS
    out = trainer._generate_single_turn(prompts, None, {}, GENERATIONS)
    assert seen[0] == (1, len(prompts[0]) - 1)  # one prefix pass for the 4 identical rows
    assert seen[1] == (GENERATIONS, 1)  # then generate's own prefill: the last prompt token only
    assert "generate" not in vars(model)  # the wrapper is gone afterwards
    assert len(out[0]) == GENERATIONS  # completion ids, one list per row
