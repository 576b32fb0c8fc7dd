"""Groups the estimator cannot score, one per class the group layer must handle the same way in every
trainer: (estimator name, options), responses (None: two plain answers), failure kind, reason excerpt.

The misbehaving estimator (examples/ttrl-misbehaving) fails only on groups whose prompt holds MISBEHAVE.
"""

from __future__ import annotations

import numpy as np

from ttrl.core.groups import Response

TRIGGER = "MISBEHAVE"
TIME_LIMIT = 0.3


def with_entropy(*arrays) -> list[Response]:
    return [
        Response(text=f"answer {i}", token_stats={"token_entropy": np.asarray(a, dtype=float)}, num_tokens=len(a))
        for i, a in enumerate(arrays)
    ]


BAD_GROUPS = {
    "nan_statistics": (("entropy", {}), with_entropy([0.1, 0.2], [0.3, float("nan")]), "inputs", "stats.mean_entropy is nan"),
    "empty_response": (("entropy", {}), with_entropy([0.1, 0.2], []), "inputs", "the response is empty"),
    "exception": (("misbehaving", {"how": "raise"}), None, "error", "ZeroDivisionError: deliberate failure"),
    "system_exit": (("misbehaving", {"how": "exit"}), None, "error", "SystemExit: 3"),
    "string_reward": (("misbehaving", {"how": "string_reward"}), None, "bad_output", "reward 0 is '1.0' (str)"),
    "bad_train_indices": (("misbehaving", {"how": "bad_indices"}), None, "bad_output", "[99, -1]"),
    "duplicate_train_indices": (("misbehaving", {"how": "duplicate_indices"}), None, "bad_output", "duplicates"),
    "int_label": (("misbehaving", {"how": "int_label"}), None, "bad_output", "label must be a string"),
    "nan_reward": (("misbehaving", {"how": "nan_reward"}), None, "bad_output", "non-finite reward"),
    "time_limit": (("misbehaving", {"how": "hang"}), None, "timeout", f"took longer than {TIME_LIMIT} s"),
}


def bad_and_good(case: str) -> tuple[list[Response], list[Response]]:
    """The bad group's responses and a well-formed group's, for the case's estimator."""
    (name, _options), responses, _kind, _reason = BAD_GROUPS[case]
    if name == "entropy":
        return responses, with_entropy([0.5, 0.5], [0.1, 0.1])
    return [Response("1", num_tokens=1), Response("2", num_tokens=1)], [Response("1", num_tokens=1), Response("2", num_tokens=1)]
