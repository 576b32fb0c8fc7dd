"""consensus_similarity, and the vote-based estimators on free_form/code groups: hand-worked groups
through the real pipeline and plugins."""

from __future__ import annotations

import math

import pytest

from ttrl.core.config import AnswerSettings, ComponentSpec, RunConfig
from ttrl.core.data import Rollout, RolloutGroup
from ttrl.core.errors import OptionError
from ttrl.core.estimation import EstimationPipeline
from ttrl.core.metrics import grade_group
from ttrl.core.plugins import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False, warn=False).registry


def run(registry, texts, task="free_form", estimator="consensus_similarity", config=None, **options):
    spec = ComponentSpec(name=estimator, options=options)
    pipeline = EstimationPipeline.from_config(config or RunConfig(), registry, spec)
    group = RolloutGroup(id="g", prompt="?", task=task, rollouts=[Rollout(text=t) for t in texts])
    pipeline.check_inputs(group)
    classes = pipeline.classify(group)
    return pipeline, classes, pipeline.run(group, classes)


# Similarities (ROUGE-L F1): s(Paris, Paris) = 1; s(Paris, "the city of Paris") = 2*1/(1+4) = 0.4;
# Lyon shares nothing. Means over the other three answers: 0.467, 0.467, 0.267, 0 -> medoid 0 (first of the tie).
GROUP = ["Answer: Paris", "Paris", "Answer: the city of Paris", "I do not know\n\n", "Answer: Lyon"]


def test_rewards_are_similarities_to_the_medoid(registry):
    _, classes, est = run(registry, GROUP)
    assert classes.answers == ["Paris", "Paris", "the city of Paris", "I do not know", "Lyon"]
    # "I do not know" is an answer too (free text has no "no answer" but an empty one)
    assert est.label == "Paris"
    assert est.diagnostics["medoid"] == 0
    assert est.rewards == pytest.approx([1.0, 1.0, 0.4, 0.0, 0.0])


def test_threshold_gives_the_medoids_class(registry):
    _, _, est = run(registry, GROUP, threshold=0.5)
    assert est.rewards == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert est.diagnostics["majority_ratio"] == pytest.approx(2 / 5)
    _, _, est = run(registry, GROUP, threshold=0.4)  # >= θ
    assert est.rewards == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_minmax_normalisation(registry):
    # answered rewards 1, 1, 0.4 (no Lyon, no "I do not know"): (r - 0.4) / 0.6
    _, _, est = run(registry, ["Paris", "Paris", "the city of Paris", ""], normalize="minmax")
    assert est.rewards == pytest.approx([1.0, 1.0, 0.0, 0.0])


def test_jaccard_option(registry):
    # token sets: {a, b} {b, a} {a, c}: J = 1, 1/3, 1/3 -> medoid 0, rewards 1, 1, 1/3
    _, _, est = run(registry, ["a b", "b a", "a c"], similarity="jaccard")
    assert est.rewards == pytest.approx([1.0, 1.0, 1 / 3])


def test_code_groups_use_the_ast_by_default(registry):
    fence = "```python\n{}\n```"
    texts = [fence.format("def add(a, b):\n    return a + b"),
             fence.format("def add(x, y):\n    return x + y"),
             fence.format("def add(a, b):\n    return a - b"),
             "I cannot write code."]
    _, classes, est = run(registry, texts, task="code")
    assert classes.answers[3] is None  # no code at all
    assert est.diagnostics["similarity"] == "ast"
    assert est.rewards == pytest.approx([1.0, 1.0, 0.9, 0.0])
    _, _, est = run(registry, texts, task="code", similarity="rouge_l")
    assert est.rewards[1] < 1.0  # renamed variables differ as tokens, not as structure


def test_nobody_answered(registry):
    _, _, est = run(registry, ["", "   "])
    assert est.label is None and est.rewards == [0.0, 0.0] and est.diagnostics["filtered"]


def test_bad_option_is_a_user_error(registry):
    with pytest.raises(OptionError):
        run(registry, GROUP, similarity="bleu")


def test_majority_vote_runs_on_similarity_classes(registry):
    # classes at θ = 0.5 (ROUGE-L F1, single link): {Paris, Paris}, {the city of Paris}, {I do not know}, {Lyon}
    _, classes, est = run(registry, GROUP, estimator="majority_vote")
    assert classes.class_ids == [0, 0, 1, 2, 3]
    assert est.label == "Paris" and est.rewards == [1.0, 1.0, 0.0, 0.0, 0.0]
    # a lower class threshold from the run config joins "the city of Paris" (0.4) to them
    config = RunConfig(answers=AnswerSettings(class_thresholds={"rouge_l": 0.4}))
    _, classes, est = run(registry, GROUP, estimator="majority_vote", config=config)
    assert classes.class_ids == [0, 0, 0, 1, 2]
    assert est.rewards == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_dare_runs_on_code_classes(registry):
    fence = "```python\n{}\n```"
    texts = [fence.format("def f(s):\n    return s[::-1]")] * 3 + [fence.format("def f(s):\n    return ''.join(reversed(s))")]
    texts = [t for t in texts]
    groups = RolloutGroup(id="g", prompt="?", task="code", rollouts=[
        Rollout(text=t, stats={"mean_entropy": 0.5, "mean_self_certainty": 1.0, "num_tokens": 10, "mean_logprob": -0.5})
        for t in texts])
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="dare"))
    classes = pipeline.classify(groups)
    est = pipeline.run(groups, classes)
    assert classes.class_ids == [0, 0, 0, 1]
    assert est.rewards[0] == est.rewards[1] == est.rewards[2] > est.rewards[3]


def test_grading_by_containment_with_a_changeable_threshold(registry):
    pipeline, classes, _ = run(registry, ["The capital of France is Paris.", "Lyon, the capital of France."],
                               estimator="majority_vote")
    truth = grade_group(pipeline.engine, classes, "Paris", "free_form")
    assert truth.correct == (True, False)
    verdict = pipeline.engine.explain("Leonardo da Vinci painted it", "da Vinci", "free_form")
    assert verdict.equivalent and "containment 1.000" in verdict.reason
    strict = RunConfig(answers=AnswerSettings(grade_thresholds={"rouge_l": 0.9}))
    pipeline, classes, _ = run(registry, ["Shakespeare wrote it."], estimator="majority_vote", config=strict)
    assert grade_group(pipeline.engine, classes, "William Shakespeare", "free_form").correct == (False,)


def test_hostile_rollouts_degrade_themselves_not_the_group(registry):
    import time

    honest = "```python\ndef add(a, b):\n    return a + b\n```"
    hostile = [
        "```python\nx = " + "(" * 40_000 + "1" + ")" * 40_000 + "\n```",   # nested past the parser's limit
        "```python\n" + "".join(" " * i + "if x:\n" for i in range(150)) + "```",  # too deep to indent
        "```python\ndef add(a, b)\n    return a + b\n```",                # does not parse
        "```python\n" + "y = 1\n" * 200_000 + "```",                       # 1.2 MB: its fence is past the scan window
        "word " * 2_000_000,                                                # 10 MB, no code at all
    ]
    started = time.perf_counter()
    _, classes, est = run(registry, [honest, *hostile, honest], task="code")
    assert time.perf_counter() - started < 10.0
    assert est.rewards[0] == est.rewards[-1] == 1.0 and est.label == classes.answers[0]
    # the three that do not parse are compared by tokens, and counted; the last two have no answer
    assert est.diagnostics["unparsed"] == 3
    assert classes.answers[4] is None and classes.answers[5] is None and est.rewards[4:6] == [0.0, 0.0]
    assert len(est.rewards) == 7 and all(0.0 <= r <= 1.0 for r in est.rewards)


def test_a_worst_case_group_stays_within_its_deadline(registry):
    import random
    import time

    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    # pre-extracted answers of 5000 words (4096 kept): the similarity layer's worst case, 1176 long pairs
    answers = [" ".join(rng.choices(words, k=5000)) for _ in range(49)]
    group = RolloutGroup(id="g", prompt="?", task="free_form", rollouts=[Rollout(text="", answer=a) for a in answers])
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="consensus_similarity"))
    started = time.perf_counter()
    classes = pipeline.classify(group)
    est = pipeline.run(group, classes)
    assert time.perf_counter() - started < 10.0  # about 3 s here (2 shared cores), classes included
    assert est.diagnostics["truncated"] == 49 and "pairs_past_deadline" not in est.diagnostics
    # and with a deadline that cannot be met, the pairs past it are counted, not silently dropped
    tight = EstimationPipeline.from_config(RunConfig(), registry,
                                           ComponentSpec(name="consensus_similarity", options={"deadline_seconds": 0.05}))
    est = tight.run(group, classes)
    assert 0 < est.diagnostics["pairs_past_deadline"] <= 49 * 48 // 2


def test_trainers_path_estimates_and_scores_free_form_groups(registry):
    # run_and_score is what the OpenRLHF and TRL adapters call: classes once, estimate, grade
    pipeline = EstimationPipeline.from_config(RunConfig(), registry, ComponentSpec(name="consensus_similarity"))
    group = RolloutGroup(id="g", prompt="?", task="free_form", rollouts=[Rollout(text=t) for t in GROUP])
    estimate, score = pipeline.run_and_score(group, reference="Paris")
    assert estimate.rewards == pytest.approx([1.0, 1.0, 0.4, 0.0, 0.0])
    # correct: Paris, Paris, "the city of Paris" (containment 1); wrong: "I do not know", Lyon
    assert score.ground_truth_ratio == pytest.approx(3 / 5) and score.label_accuracy == 1.0
    assert score.pair_wins == pytest.approx(6.0) and score.pair_count == 6  # every correct one scores higher


def test_empo_runs_on_free_form_classes(registry):
    # similarity classes {Paris, Paris}, {the city of Paris}, {I do not know}, {Lyon}: p = 0.4, 0.2, 0.2, 0.2;
    # semantic entropy H = -(0.4 ln 0.4 + 3 * 0.2 ln 0.2) = 1.332 < ln 5 = 1.609: kept, and r_i = p(c_i)
    _, _, est = run(registry, GROUP, estimator="empo")
    assert est.diagnostics["semantic_entropy"] == pytest.approx(-(0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2)))
    assert est.label == "Paris"
    assert est.rewards == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.2])
