"""The N-modality objectives pass the testkit's ObjectiveContract, like any plugin's objective."""

from __future__ import annotations

from typing import Any

import torch
from scibind_testkit import ObjectiveContract


class TestSymile(ObjectiveContract):
    objective_name = "core/symile"
    objective_kwargs = {"negative_sampling": "n_squared"}  # "n" draws random negatives on every call
    views = ("a", "b", "c")


class TestSymileLearnedMissing(ObjectiveContract):
    objective_name = "core/symile"
    objective_kwargs = {
        "negative_sampling": "n_squared",
        "missing": "learned",
        "views": ["a", "b", "c"],
        "embed_dim": 16,
    }
    views = ("a", "b", "c")
    mask_equals_subset = False  # records missing one view still take part


class TestGram(ObjectiveContract):
    objective_name = "core/gram"
    views = ("a", "b", "c")


class TestSoftClip(ObjectiveContract):
    objective_name = "core/soft-clip"
    objective_kwargs = {"labels": ["finding"]}
    mask_equals_subset = False  # that contract test passes the full-size targets beside the subset

    def make_targets(self) -> dict[str, Any]:
        # The contract permutes embeddings but not targets: one shared code keeps the loss order-free.
        return {"finding": torch.zeros(self.batch_size, dtype=torch.int64)}


class TestCWCL(ObjectiveContract):
    objective_name = "core/cwcl"
    objective_kwargs = {"weights_view": "b"}


class TestPrototype(ObjectiveContract):
    objective_name = "core/prototype"
    objective_kwargs = {"embed_dim": 16, "n_prototypes": 4}


class TestFilip(ObjectiveContract):
    objective_name = "core/filip"


class TestUniformityAlignment(ObjectiveContract):
    objective_name = "core/uniformity-alignment"
    views = ("a", "b", "c")
    objective_kwargs = {"anchor": "a"}
