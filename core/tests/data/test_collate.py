from __future__ import annotations

import numpy as np
import pytest
import torch
from scibind.data.collate import collate_for_modality, collate_list, default_collate
from scibind.errors import DataError, ShapeError, UnknownNameError


def test_stacks_tensors_arrays_and_numbers():
    out = default_collate([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])])
    assert torch.equal(out, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    arrays = default_collate([np.arange(3, dtype=np.int16), np.arange(3, 6, dtype=np.int16)])
    assert arrays.dtype == torch.int16 and arrays.tolist() == [[0, 1, 2], [3, 4, 5]]
    ints = default_collate([1, 2, 3])
    assert ints.dtype == torch.int64 and ints.tolist() == [1, 2, 3]
    floats = default_collate([1.5, 2])
    assert floats.dtype == torch.float32 and floats.tolist() == [1.5, 2.0]
    assert default_collate([True, False]).dtype == torch.bool


def test_mixed_dtypes_are_promoted():
    out = default_collate([torch.tensor([1], dtype=torch.int64), torch.tensor([0.5])])
    assert out.dtype == torch.float32 and out.tolist() == [[1.0], [0.5]]


def test_dicts_tuples_and_strings():
    out = default_collate([{"x": torch.zeros(2), "n": 1}, {"x": torch.ones(2), "n": 2}])
    assert torch.equal(out["x"], torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert out["n"].tolist() == [1, 2]
    pairs = default_collate([(torch.zeros(1), "a"), (torch.ones(1), "b")])
    assert isinstance(pairs, tuple) and pairs[1] == ["a", "b"] and pairs[0].shape == (2, 1)
    assert default_collate(["a", "b"]) == ["a", "b"]
    assert collate_list([{"g": 1}, None]) == [{"g": 1}, None]


def test_shape_mismatch_names_the_shapes():
    items = [torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 5)]
    with pytest.raises(ShapeError, match=r"item 0 has \(3, 4\), item 2 has \(3, 5\)"):
        default_collate(items)
    with pytest.raises(ShapeError, match="different keys"):
        default_collate([{"a": 1}, {"b": 1}])


def test_uncollatable():
    with pytest.raises(DataError, match="empty"):
        default_collate([])
    with pytest.raises(DataError, match="cannot collate a object"):
        default_collate([object()])
    with pytest.raises(DataError, match="dtype object"):
        default_collate([np.array(["a", 1], dtype=object)])


def test_collate_for_modality_resolves_registered_functions():
    assert collate_for_modality("text") is collate_list
    assert collate_for_modality("vector") is default_collate
    assert collate_for_modality("vector") is collate_for_modality("vector")
    with pytest.raises(UnknownNameError, match=r"named 'vectr'\. Did you mean 'vector'"):
        collate_for_modality("vectr")


def test_move_to_uses_the_to_method_of_batch_like_objects():
    import torch
    from scibind.data.types import move_to

    class Graphs:
        def __init__(self):
            self.moved_to = None

        def to(self, device):
            self.moved_to = device
            return self

    graphs = Graphs()
    out = move_to({"g": graphs, "x": [torch.zeros(2)], "name": "abc"}, "cpu")
    assert out["g"] is graphs and graphs.moved_to == "cpu"
    assert out["name"] == "abc" and torch.equal(out["x"][0], torch.zeros(2))
