"""GradCache gives the gradients (and so the weights) of ordinary training on the same batch."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from scibind.align.clip import ClipObjective
from scibind.align.model import build_model
from scibind.data.types import Batch, ModalityBatch
from scibind.train import load_recipe, train
from scibind.train.grad_cache import ChunkedCollate, grad_cache_backward

TOWERS = {
    v: {
        "encoder": "core/mlp",
        "encoder_kwargs": {"in_dim": 6, "embed_dim": 8, "dropout": 0.3},
        "modality": "vector",
    }
    for v in ("view_a", "view_b")
}


def make_batch(rows: range, present_b: torch.Tensor, data: dict[str, torch.Tensor]) -> Batch:
    idx = torch.arange(len(rows))
    keep_b = present_b[rows.start : rows.stop]
    return Batch(
        ids=[str(i) for i in rows],
        views={
            "view_a": ModalityBatch(data["view_a"][rows.start : rows.stop], idx),
            "view_b": ModalityBatch(data["view_b"][rows.start : rows.stop][keep_b], idx[keep_b]),
        },
        present={"view_a": torch.ones(len(rows), dtype=torch.bool), "view_b": keep_b},
        targets={"group": torch.arange(rows.start, rows.stop) % 4},
    )


def test_chunked_collate_keeps_order():
    assert ChunkedCollate(lambda items: list(items), 3)(range(7)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_gradients_equal_a_graph_through_every_chunk_with_dropout():
    gen = torch.Generator().manual_seed(0)
    data = {v: torch.randn(11, 6, generator=gen) for v in TOWERS}
    present_b = torch.rand(11, generator=gen) > 0.2
    chunks = [make_batch(range(a, min(a + 4, 11)), present_b, data) for a in range(0, 11, 4)]

    def build():
        torch.manual_seed(3)
        return build_model(TOWERS, 8).train(), ClipObjective(block_size=3, positive_target="group")

    def params(model, objective):
        return [*model.parameters(), *objective.parameters()]

    model, objective = build()
    torch.manual_seed(7)
    out = grad_cache_backward(model, objective, chunks, device=torch.device("cpu"), loss_weight=0.5)
    after = torch.get_rng_state()
    cached = [p.grad.clone() for p in params(model, objective)]

    model, objective = build()
    torch.manual_seed(7)  # same dropout masks: one graph over the same chunked forwards
    parts = [model(c) for c in chunks]
    emb = {v: torch.cat([p[v] for p in parts]) for v in TOWERS}
    present = {v: torch.cat([c.present[v] for c in chunks]) for v in TOWERS}
    plain = objective(emb, present, group=torch.cat([c.targets["group"] for c in chunks]))
    (plain.loss * 0.5).backward()
    torch.testing.assert_close(out.loss, plain.loss)
    assert torch.equal(torch.get_rng_state(), after)  # the RNG continues as after one forward pass
    for got, want in zip(cached, [p.grad for p in params(model, objective)], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_three_steps_of_grad_cache_training_give_the_weights_of_plain_training(write_recipe, tmp_path):
    path = write_recipe(train={"max_steps": 3, "checkpoint_every": 3, "batch_size": 48, "warmup_steps": 0})
    plain = train(load_recipe(path), tmp_path / "plain")
    cached = train(load_recipe(path, ["train.grad_cache=true", "train.grad_cache_chunk=10"]), tmp_path / "gc")
    assert plain.final_loss is not None
    assert abs(plain.final_loss - cached.final_loss) < 1e-5
    a = load_file(str(plain.checkpoint / "model.safetensors"))
    b = load_file(str(cached.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
