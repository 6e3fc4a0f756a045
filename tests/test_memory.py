"""runners.trial.memory.keep_freed_memory: a training step of an SE network stops page-faulting its
memory back in, which with glibc's default it does at every step."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# SGD steps of SE-ResNet-50 (batch 4, 160x160) in a fresh process: minor page faults per step.
STEPS = """
import json, resource, sys
import torch
from torch import nn
from runners.trial.memory import keep_freed_memory
from search_space import ArchConfig, build_model

kept = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.set_num_threads(2)
torch.manual_seed(0)
model = build_model(ArchConfig.parse({"backbone": "resnet50", "se": {"reduction": 16}}))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
x, y = torch.randn(4, 3, 160, 160), torch.randint(0, 1000, (4,))
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def faults_per_step(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", STEPS, mode], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_training_steps_stop_faulting_memory_back_in() -> None:
    default, kept = faults_per_step("default"), faults_per_step("keep")
    assert kept["kept"] is True
    after_warm_up = default["faults"][2:], kept["faults"][2:]
    # glibc as it comes: tens of thousands of pages (over 100 MB) mapped again per step
    assert statistics.mean(after_warm_up[0]) > 10_000, default
    # kept: once the heap has grown to the step's peak, steps map next to nothing new (now and
    # then a few MB, where a step's allocations land outside the main heap)
    assert sum(after_warm_up[1]) < sum(after_warm_up[0]) / 10, (default, kept)
