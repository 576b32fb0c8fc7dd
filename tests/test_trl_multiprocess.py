"""Several processes: a prompt group that straddles two processes' slices is still scored as one group.

TRL hands each process its slice of the global batch; with 3 groups of 4 over 2 processes, group "b"
has two completions on each. Two real processes (torch.distributed, gloo on CPU) call the adapter's
reward function on their slices; together they must return what one process returns for the whole batch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """\
    import json, sys
    from accelerate import PartialState
    from ttrl.adapters.trl.binding import EstimatorReward
    from ttrl.core.config import ComponentSpec, RunConfig
    from ttrl.core.groups import GroupEstimator
    from ttrl.core.plugins import load_plugins

    state = PartialState(cpu=True)
    batch = json.loads(sys.argv[1])
    config = RunConfig(estimator=ComponentSpec(name="majority_vote"), answers={"task": "number"})
    groups = GroupEstimator.from_config(
        config, load_plugins(entry_points=False).registry, n_votes=4, n_train=None, section="trl"
    )
    reward = EstimatorReward(groups, temperature=1.0)
    per = len(batch) // state.num_processes
    mine = batch[state.process_index * per : (state.process_index + 1) * per]
    rewards = reward(
        prompts=[q for _, q, _ in mine], completions=[c for _, _, c in mine], completion_ids=[[1]] * len(mine),
        group_id=[g for g, _, _ in mine], task=["math"] * len(mine), reference=[None] * len(mine),
    )
    # one file per rank: the two ranks' stdout share one pipe and their lines can interleave
    with open(f"{sys.argv[2]}/rank{state.process_index}.json", "w") as out:
        json.dump(rewards, out)
    # Tear down like a trainer does: rank 0 hosts the rendezvous store, and exiting while the other
    # rank still talks to it aborts that process ("terminate called without an active exception").
    import torch.distributed as dist
    state.wait_for_everyone()
    dist.destroy_process_group()
    """
)

BATCH = [
    ["a", "qa", "7"], ["a", "qa", "7"], ["a", "qa", "6"], ["a", "qa", "7"],  # 7 wins
    ["b", "qb", "1"], ["b", "qb", "2"],  # ---- process 0 ends here ----
    ["b", "qb", "2"], ["b", "qb", "3"],  # 2 wins, with one vote from each process
    ["c", "qc", "5"], ["c", "qc", "4"], ["c", "qc", "5"], ["c", "qc", "5"],  # 5 wins
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_groups_split_across_two_processes_are_voted_on_whole(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(worker), json.dumps(BATCH), str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {rank: json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)}
    assert results[0] + results[1] == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
