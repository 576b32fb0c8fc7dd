"""ttrl's binding inside OpenRLHF 0.11's real trainer code, on CPU, in a local Ray instance.

What is real: Ray starts with the launcher's ``worker_process_setup_hook`` and spec, exactly as
``ttrl train`` does, and the patches are applied on import inside Ray worker processes (where
OpenRLHF's ``PPOTrainer`` runs). Experiences are made by OpenRLHF's ``SamplesGenerator`` from vLLM-style
responses tokenized with the embedded SmolLM2 tokenizer; ``RemoteExperienceMaker`` (patched) dispatches
the actor forward through OpenRLHF's ``RayActorGroup.async_run_method_batch`` and ``execute_batch`` to
a Ray actor running OpenRLHF's ``PolicyModelActor.forward`` around OpenRLHF's ``Actor`` wrapping the
real SmolLM2-135M; rewards go through OpenRLHF's own ``compute_advantages_and_returns`` (group_norm).

What is shimmed, narrowly, inside the Ray workers only (never in the pytest process, so other tests
see no fake modules): packages OpenRLHF imports at module import time that need CUDA to install.
- ``flash_attn.bert_padding`` / ``flash_attn.utils.distributed`` (imported by
  ``openrlhf.models.ring_attn_utils``; used only with packed sequences, which these tests do not use);
- ``deepspeed`` and ``deepspeed.runtime.zero.partition_parameters.ZeroParamStatus`` (imported by
  ``openrlhf.utils.deepspeed``; no DeepSpeed engine runs here);
- ``vllm.SamplingParams``, ``vllm.inputs.TokensPrompt``, ``vllm.utils.random_uuid`` (imported by
  ``openrlhf.trainer.ray.vllm_engine`` and ``samples_generator``; generation is replaced by the
  responses written below).
Every shimmed name raises if called. ``torch.cuda.current_device`` is pointed at the CPU in the policy
actor, because ``PolicyModelActor.forward`` asks for it; ``Actor.packing_samples`` is set to False
because ``Actor(model_instance)`` does not set it (it does when OpenRLHF loads a model by path).
Not covered: vLLM generation, DeepSpeed training steps, GPUs (see examples/openrlhf/gpu_end_to_end.sh).
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("openrlhf")

from ttrl.adapters.openrlhf.launch import runtime_env  # noqa: E402
from ttrl.adapters.openrlhf.reward_file import make_reward_func  # noqa: E402

TEMPERATURE = 0.7

CUDA_ONLY_IMPORTS = {
    "flash_attn.bert_padding": ("index_first_axis", "pad_input", "rearrange", "unpad_input"),
    "flash_attn.utils.distributed": ("all_gather",),
    "deepspeed.runtime.zero.partition_parameters": ("ZeroParamStatus",),
    "vllm": ("SamplingParams",),
    "vllm.inputs": ("TokensPrompt",),
    "vllm.utils": ("random_uuid",),
}


def install_cuda_only_shims() -> None:
    """Empty modules for CUDA-only packages, with the names OpenRLHF imports from them (in a Ray worker)."""

    def unavailable(*_args, **_kwargs):
        raise RuntimeError("shimmed CUDA-only package: not available in CPU tests")

    for dotted, names in CUDA_ONLY_IMPORTS.items():
        parts = dotted.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                module = types.ModuleType(name)
                module.__path__ = []
                module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
                sys.modules[name] = module
                if depth > 1:
                    setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], module)
        for attr in names:
            setattr(sys.modules[dotted], attr, unavailable)


def load_tokenizer():
    import os

    from transformers import AutoTokenizer

    from ttrl.models import resolve_model

    os.environ["HF_HUB_OFFLINE"] = "1"
    ref = resolve_model("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(ref.path, **ref.from_pretrained_kwargs())
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    return tokenizer


class PolicyProcess:
    """A Ray actor hosting OpenRLHF's policy actor code around the real SmolLM2 on CPU."""

    def __init__(self):
        install_cuda_only_shims()
        import torch

        torch.cuda.current_device = lambda: "cpu"
        from openrlhf.models import Actor
        from openrlhf.trainer.ray.launcher import BaseModelActor
        from openrlhf.trainer.ray.ppo_actor import PolicyModelActor

        from ttrl.models import load_causal_lm

        model, _tokenizer, _ref = load_causal_lm("smollm2-135m")
        actor = Actor(model, temperature=TEMPERATURE)
        actor.packing_samples = False
        policy_class = PolicyModelActor.__ray_metadata__.modified_class
        # OpenRLHF's own methods: execute_batch (BaseModelActor), forward (PolicyModelActor), and the
        # ttrl_token_stats method that the setup hook patched into BaseModelActor
        host = type("CPUPolicy", (BaseModelActor,), {"forward": policy_class.forward})
        self.policy = host.__new__(host)
        self.policy.actor = actor
        self.policy.strategy = types.SimpleNamespace(ring_attn_group=None, is_rank_0=lambda: True)
        self.model = model

    def execute_batch(self, method_name, all_data, start_idx, end_idx):
        return self.policy.execute_batch(method_name, all_data, start_idx, end_idx)

    def has_ttrl_method(self) -> bool:
        return hasattr(self.policy, "ttrl_token_stats")

    def reference_mean_entropy(self, sequence: list[int], prompt_len: int) -> float:
        """Mean entropy of the response tokens, from plain transformers logits (independent of ttrl)."""
        import torch

        with torch.no_grad():
            logits = self.model(torch.tensor([sequence])).logits[0].double() / TEMPERATURE
        logp = torch.log_softmax(logits, dim=-1)[prompt_len - 1 : len(sequence) - 1]
        return float(-(logp.exp() * logp).sum(-1).mean())


class TrainerProcess:
    """A Ray actor standing where OpenRLHF's PPOTrainer runs: it imports the trainer modules."""

    def __init__(self, n_samples_per_prompt: int):
        install_cuda_only_shims()
        from argparse import Namespace

        from openrlhf.trainer.ppo_utils import experience_maker
        from openrlhf.utils.config import hierarchize

        self.experience_maker = experience_maker
        self.tokenizer = load_tokenizer()
        flat = {
            "train.dynamic_batch_enable": False, "train.colocate_all": False,
            "train.colocate_actor_ref": False, "train.colocate_critic_reward": False,
            "actor.num_nodes": 1, "actor.num_gpus_per_node": 1,
            "ds.ring_attn_size": 1, "ds.tensor_parallel_size": 1,
            "rollout.micro_batch_size": 2, "rollout.n_samples_per_prompt": n_samples_per_prompt,
            "rollout.max_tokens_per_gpu": None, "data.max_len": 256,
            "algo.advantage.estimator": "group_norm", "algo.advantage.gamma": 1.0,
            "algo.advantage.lambd": 1.0, "algo.advantage.no_std_norm": False,
            "algo.kl.use_loss": False, "algo.kl.estimator": "k1",
            "reward.clip_range": (-10.0, 10.0), "reward.overlong_buffer_len": None,
            "reward.overlong_penalty_factor": 1.0, "reward.stop_properly_penalty_coef": None,
        }
        self.args = hierarchize(Namespace(**flat))

    def patched_by(self) -> str:
        return self.experience_maker.RemoteExperienceMaker.make_experience_batch.__module__

    def tokenize(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        ids = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        return ids(prompt), ids(response) + [self.tokenizer.eos_token_id]

    def make_experiences(self, responses: list[dict], policy_handles: list) -> list[dict]:
        import torch
        from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController
        from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
        from openrlhf.trainer.ray.launcher import RayActorGroup

        strategy = types.SimpleNamespace(args=self.args)
        generator = SamplesGenerator(strategy, None, None, self.tokenizer, [])
        samples = [generator._process_response_into_experience(r, max_len=256) for r in responses]
        # a RayActorGroup over our CPU policy actor: its constructor would ask Ray for GPUs
        group = RayActorGroup.__new__(RayActorGroup)
        group._actor_handlers = policy_handles
        group.duplicate_actors = 1
        maker = self.experience_maker.RemoteExperienceMaker(
            group, None, None, None, FixedKLController(0.0), strategy, self.tokenizer
        )
        before = self.args.rollout.n_samples_per_prompt
        experiences = maker.make_experience_batch(samples)
        assert self.args.rollout.n_samples_per_prompt == before  # n_train only during the step
        rows = []
        for exp in experiences:
            for i in range(len(exp.sequences)):
                mask = exp.action_mask[i].bool()
                rows.append({
                    "prompt": exp.prompts[i],
                    "response": self.tokenizer.decode(exp.sequences[i][1:][: mask.shape[0]][mask], skip_special_tokens=True),
                    "reward": float(exp.rewards[i]),
                    "advantages": exp.advantages[i][mask].tolist(),
                    "log_probs_finite": bool(torch.isfinite(exp.action_log_probs[i][mask]).all()),
                    "info": {k: float(v[i]) for k, v in exp.info.items() if isinstance(v, torch.Tensor) and v.dim()},
                })
        return rows


def spec_for(name: str, n_votes: int, n_train: int, token_stats: bool, options=None) -> dict:
    return {
        "run": {"estimator": {"name": name, "options": options or {}, "label": None}, "reward_shaping": [],
                "answers": {"task": "math", "timeout_seconds": 5.0},
                "groups": {"on_failure": "skip", "estimator_timeout_seconds": 60.0}},
        "n_votes": n_votes, "n_train": n_train, "token_stats": token_stats, "temperature": TEMPERATURE,
        "eval_top_p": 0.95,
    }


MAJORITY = spec_for("majority_vote", 4, 2, False, {"n_train": 2})


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance, started the way the launcher starts it (hook + spec in the job env)."""
    env = runtime_env(json.dumps(MAJORITY))
    env["env_vars"]["HF_HUB_OFFLINE"] = "1"
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=env, log_to_driver=False)
    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)  # the test's classes reach the workers by value
    yield
    ray.cloudpickle.unregister_pickle_by_value(module)
    ray.shutdown()


@pytest.fixture(scope="module")
def policy(cluster):
    return ray.remote(num_cpus=0)(PolicyProcess).remote()


def responses_for(trainer, groups: list[tuple[str, str, list[str]]]) -> list[dict]:
    """vLLM-style responses (what SingleTurnAgentExecutor returns) with the generated grader's reward."""
    grader = make_reward_func({"kind": "grader", "run": MAJORITY["run"]})
    out = []
    for prompt, label, texts in groups:
        for text in texts:
            prompt_ids, action_ids = ray.get(trainer.tokenize.remote(prompt, text))
            graded = grader([prompt + text], [prompt], [label])
            out.append({
                "prompt": prompt, "label": label, "images": None, "mm_train_inputs": None,
                "observation_tokens": prompt_ids + action_ids,
                "action_ranges": [(len(prompt_ids), len(prompt_ids) + len(action_ids))],
                "rollout_log_probs": None, "truncated": False,
                "reward": graded["rewards"], "scores": graded["scores"], "extra_logs": graded["extra_logs"],
            })
    return out


@pytest.mark.model
def test_majority_vote_rewards_train_subset_advantages_and_metrics_inside_openrlhf(policy):
    from ttrl.adapters.openrlhf.launch import check_workers

    check_workers(ray)  # the launcher's check: Ray workers run ttrl's setup hook
    trainer = ray.remote(num_cpus=0)(TrainerProcess).remote(4)
    assert ray.get(trainer.patched_by.remote()) == "ttrl.adapters.openrlhf.binding"
    assert ray.get(policy.has_ttrl_method.remote())
    rows = ray.get(trainer.make_experiences.remote(responses_for(trainer, GROUPS), [policy]))

    # TTRL: vote over 4, train on the first 2 of each prompt; the label never becomes a reward
    assert [(r["response"], r["reward"]) for r in rows] == [
        (" It is \\boxed{5}.", 1.0), (" I think \\boxed{6}.", 0.0),
        (" \\boxed{7}", 0.0), (" It is \\boxed{8}.", 1.0),  # the correct 7 is outvoted: reward 0
    ]
    # OpenRLHF's group_norm over each prompt's 2 trained rewards: (r - mean) / (std + 1e-9), std of [1, 0] = 0.7071
    for row, sign in zip(rows, (1, -1, -1, 1)):
        assert row["advantages"] == pytest.approx([sign * 0.5 ** 0.5] * len(row["advantages"]), abs=1e-6)
        assert row["log_probs_finite"]
        assert row["info"]["reward"] == row["reward"]
    # reward-quality metrics against the labels, over all 4 votes per prompt, logged through Experience.info
    info = rows[0]["info"]
    assert info["ttrl/label_accuracy"] == 0.5      # 5 right, 8 wrong
    assert info["ttrl/reward_accuracy"] == 0.5     # 4/4 rewards right for 2+3, 0/4 for 3+4
    assert info["ttrl/trained_reward_accuracy"] == 0.5  # over the 2 trained per prompt: 2/2, 0/2
    assert info["ttrl/majority_ratio"] == 0.75
    assert info["ttrl/groups"] == 2.0 and info["ttrl/failed_groups"] == 0.0
    assert info["ground_truth_reward"] == 1.0      # the grader's score, kept for logging only
    assert all(r["info"]["ttrl/label_accuracy"] == 0.5 for r in rows)


GROUPS = [
    ("Q: What is 2+3? A:", "5", [" It is \\boxed{5}.", " I think \\boxed{6}.", " So \\boxed{5}.", " \\boxed{5}"]),
    ("Q: What is 3+4? A:", "7", [" \\boxed{7}", " It is \\boxed{8}.", " So \\boxed{8}.", " \\boxed{8}!"]),
]


@pytest.mark.model
def test_without_ttrls_patch_openrlhf_refuses_to_train_on_the_first_step(policy):
    """Ray workers that did not install ttrl's binding (hook or spec missing) run OpenRLHF unpatched:
    the generated reward file gives no training reward, so OpenRLHF stops instead of using the labels."""
    env = {"env_vars": {"TTRL_OPENRLHF_SPEC": "", "HF_HUB_OFFLINE": "1"}}
    trainer = ray.remote(num_cpus=0)(TrainerProcess).options(runtime_env=env).remote(4)
    assert ray.get(trainer.patched_by.remote()) == "openrlhf.trainer.ppo_utils.experience_maker"
    with pytest.raises(ray.exceptions.RayTaskError, match="reward_model_group is required when rewards are not precomputed"):
        ray.get(trainer.make_experiences.remote(responses_for(trainer, GROUPS), [policy]))
    ray.kill(trainer)


@pytest.mark.model
def test_a_group_the_estimator_cannot_score_gets_advantage_zero_and_the_step_goes_on(policy, example_plugins_dir):
    spec = spec_for("misbehaving", 4, 2, False, {"how": "raise", "trigger": "3+4"})
    env = {"env_vars": {"TTRL_OPENRLHF_SPEC": json.dumps(spec), "HF_HUB_OFFLINE": "1",
                        "PYTHONPATH": str(example_plugins_dir)}}
    trainer = ray.remote(num_cpus=0)(TrainerProcess).options(runtime_env=env).remote(4)
    rows = ray.get(trainer.make_experiences.remote(responses_for(trainer, GROUPS), [policy]))
    ray.kill(trainer)

    # both prompts keep 2 samples each (OpenRLHF's batch shape); the failed prompt's advantages are 0
    assert [r["prompt"] for r in rows] == [GROUPS[0][0]] * 2 + [GROUPS[1][0]] * 2
    assert [r["reward"] for r in rows] == [1.0, 0.0, 0.0, 0.0]  # misbehaving: alternating 1, 0 when it works
    assert all(a != 0.0 for r in rows[:2] for a in r["advantages"])
    assert all(a == 0.0 for r in rows[2:] for a in r["advantages"])
    assert rows[0]["info"]["ttrl/failed_groups"] == 1.0 and rows[0]["info"]["ttrl/scored_groups"] == 1.0


@pytest.mark.model
def test_entropy_estimator_uses_full_vocabulary_statistics_from_the_actor(policy):
    spec = spec_for("entropy", 2, 2, True)
    env = {"env_vars": {"TTRL_OPENRLHF_SPEC": json.dumps(spec), "HF_HUB_OFFLINE": "1"}}
    trainer = ray.remote(num_cpus=0)(TrainerProcess).options(runtime_env=env).remote(2)
    prompt = "Q: What is 2+3? A:"
    texts = [" The answer is \\boxed{5}.", " Hmm, maybe seven or \\boxed{6}?"]
    rows = ray.get(trainer.make_experiences.remote(responses_for(trainer, [(prompt, "5", texts)]), [policy]))

    expected = []
    for text in texts:
        prompt_ids, action_ids = ray.get(trainer.tokenize.remote(prompt, text))
        expected.append(-ray.get(policy.reference_mean_entropy.remote(prompt_ids + action_ids, len(prompt_ids))))
    # RENT: r = -mean_t H_t, with H_t of softmax(logits / T) over the full vocabulary
    assert [r["reward"] for r in rows] == pytest.approx(expected, rel=1e-4)
    mean = sum(expected) / 2
    std = abs(expected[0] - expected[1]) / 2 ** 0.5
    for row, r in zip(rows, expected):
        assert row["advantages"][0] == pytest.approx((r - mean) / (std + 1e-9), rel=1e-3)
    # answers are extracted for the metrics only (entropy gives no label, so no label metrics)
    assert rows[0]["info"]["ttrl/ground_truth_ratio"] == 0.5
    assert "ttrl/label_accuracy" not in rows[0]["info"]


UNPATCHED_SCRIPT = r"""
import sys, types
sys.path.insert(0, sys.argv[1])
from test_openrlhf_binding import GROUPS, MAJORITY, TrainerProcess
host = TrainerProcess(4)  # OpenRLHF's args and the tokenizer, in this plain process (no Ray worker, no hook)
from openrlhf.trainer.ppo_trainer import compute_eval_metrics
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
from ttrl.adapters.openrlhf.reward_file import make_reward_func

assert "ttrl.adapters.openrlhf.binding" not in sys.modules  # no setup hook, no patch: plain OpenRLHF
tokenizer = host.tokenizer
grader = make_reward_func({"kind": "grader", "run": MAJORITY["run"]})  # the file ttrl passes as remote_url
strategy = types.SimpleNamespace(args=host.args)
generator = SamplesGenerator(strategy, None, None, tokenizer, [])
samples = []
for prompt, label, texts in GROUPS:
    for text in texts:
        p, a = tokenizer(prompt, add_special_tokens=False)["input_ids"], tokenizer(text, add_special_tokens=False)["input_ids"]
        graded = grader([prompt + text], [prompt], [label])
        samples.append(generator._process_response_into_experience({
            "prompt": prompt, "label": label, "images": None, "mm_train_inputs": None,
            "observation_tokens": p + a, "action_ranges": [(len(p), len(p) + len(a))], "rollout_log_probs": None,
            "truncated": False, "reward": graded["rewards"], "scores": graded["scores"], "extra_logs": graded["extra_logs"],
        }, max_len=256))
maker = RemoteExperienceMaker(None, None, None, None, FixedKLController(0.0), strategy, tokenizer)
for name, call in (("train", lambda: maker.make_experience_batch(samples)),
                   ("eval", lambda: compute_eval_metrics([], samples, 4))):
    try:
        call()
        print(name, "RAN")
    except Exception as exc:
        print(name, "REFUSED", type(exc).__name__, exc)

# with ttrl's patch, evaluation is graded against the labels (and sampled with eval_top_p)
from ttrl.adapters.openrlhf import binding

seen = {}
class Generator:
    def _ttrl_original_generate_eval_samples(self, **kwargs):
        seen.update(kwargs)
        return samples
binding._SPEC = {"eval_top_p": 0.95}
evaluated = binding.generate_eval_samples(Generator(), top_p=1.0, n_samples_per_prompt=4)
print("patched eval", compute_eval_metrics([], evaluated, 4)["eval_unknown_pass1"], seen["top_p"])
"""


def test_openrlhf_without_any_ttrl_hook_cannot_train_or_evaluate_on_the_grader(tmp_path):
    """A plain process (no Ray, no setup hook) running OpenRLHF's own experience maker and evaluation
    on samples graded by ttrl's reward file: both refuse, neither trains on the labels."""
    import os
    import subprocess
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("TTRL_")}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", UNPATCHED_SCRIPT, str(Path(__file__).parent)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("train", "eval"))]
    assert lines[0] == "train REFUSED ValueError reward_model_group is required when rewards are not precomputed"
    assert lines[1].startswith("eval REFUSED")
    # 2+3: 3 of 4 right; 3+4: 1 of 4 right -> pass@1 0.5, from the grader's scores
    assert [line for line in done.stdout.splitlines() if line.startswith("patched")] == ["patched eval 0.5 0.95"]
