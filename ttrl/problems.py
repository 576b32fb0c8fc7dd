"""Problems that ttrl writes itself: templated arithmetic and short word problems with known answers.

They give the built-in rollout set and the CPU training example tasks where a 135M model is right
sometimes, so that estimators disagree. Generation is deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo")
ITEMS = ("apples", "pencils", "marbles", "books", "stickers", "cookies", "coins", "shells")


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str
    answer: str
    level: int
    task: str = "math"


def _add_small(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    return f"What is {a} + {b}?", a + b


def _sub_small(rng: random.Random) -> tuple[str, int]:
    a = rng.randint(5, 19)
    b = rng.randint(1, a - 1)
    return f"What is {a} - {b}?", a - b


def _mul_small(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"What is {a} times {b}?", a * b


def _add_two_digit(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(10, 59), rng.randint(10, 39)
    return f"Compute {a} + {b}.", a + b


def _word_more(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", a + b


def _word_left(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a = rng.randint(6, 15)
    b = rng.randint(1, a - 1)
    return f"{name} had {a} {item} and gave away {b}. How many {item} are left?", a - b


def _word_groups(rng: random.Random) -> tuple[str, int]:
    item = rng.choice(ITEMS)
    a, b = rng.randint(2, 6), rng.randint(2, 5)
    return f"Each box holds {a} {item}. How many {item} are in {b} boxes?", a * b


def _two_step(rng: random.Random) -> tuple[str, int]:
    a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(2, 4)
    return f"What is ({a} + {b}) times {c}?", (a + b) * c


TEMPLATES: dict[int, tuple[Callable[[random.Random], tuple[str, int]], ...]] = {
    1: (_add_small, _word_more),
    2: (_sub_small, _mul_small, _word_left),
    3: (_add_two_digit, _word_groups, _two_step),
}


def generate_problems(n: int, *, seed: int = 0, levels: Iterable[int] = (1, 2, 3), prefix: str = "ttrl-arith") -> list[Problem]:
    """``n`` distinct problems, cycling through ``levels``; the same seed gives the same problems."""
    levels = list(levels)
    unknown = [lvl for lvl in levels if lvl not in TEMPLATES]
    if unknown or not levels:
        raise ValueError(f"levels must be among {sorted(TEMPLATES)}, got {levels}")
    rng = random.Random(seed)
    seen: set[str] = set()
    problems: list[Problem] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 100 * max(n, 1):
            raise ValueError(f"cannot make {n} distinct problems at levels {levels}")
        level = levels[len(problems) % len(levels)]
        question, answer = rng.choice(TEMPLATES[level])(rng)
        if question in seen:
            continue
        seen.add(question)
        problems.append(Problem(id=f"{prefix}/{seed}/{len(problems)}", prompt=question, answer=str(answer), level=level))
    return problems
