"""Token-level objectives from recipes: core/filip trains from YAML, also with GradCache."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from scibind.align.filip import FilipObjective
from scibind.align.model import build_model
from scibind.align.tokens import embed_with_tokens
from scibind.data.types import Batch, ModalityBatch
from scibind.train import load_recipe, train
from scibind.train.grad_cache import grad_cache_backward

RECIPE = {
    "name": "tiny-filip",
    "embed_dim": 16,
    "towers": {
        "text": {"modality": "text", "encoder": "core/tiny-text", "encoder_kwargs": {"embed_dim": 32}},
        "view_a": {
            "modality": "vector",
            "encoder": "core/mlp",
            "encoder_kwargs": {"in_dim": 32, "embed_dim": 32, "hidden_dim": 32, "n_layers": 2},
        },
    },
    "objective": {"name": "core/filip", "kwargs": {"temperature": 0.1, "rows_per_tile": 16}},
    "data": {
        "dataset": "core/synthetic-pairs",
        "dataset_kwargs": {"n": 300, "seed": 1, "captions": True, "missing_fraction": 0.1},
        "labels": ["label"],
    },
    "train": {"batch_size": 32, "max_steps": 30, "checkpoint_every": 30, "lr": 0.003, "log_every": 1},
    "eval": {"tasks": []},
}

TOWERS = {
    "text": {"encoder": "core/tiny-text", "encoder_kwargs": {"embed_dim": 8}},
    "vec": {
        "encoder": "core/mlp",
        "encoder_kwargs": {"in_dim": 4, "embed_dim": 8, "dropout": 0.3},
        "modality": "vector",
    },
}
TEXTS = ["red apple", "a green pear", "plum", "ripe yellow banana here", "fig", "two dates", "kiwi"]


def write(tmp_path: Path, **train_cfg) -> Path:
    recipe = json.loads(json.dumps(RECIPE))
    recipe["train"].update(train_cfg)
    path = tmp_path / "filip.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_filip_recipe_trains_on_text_tokens_and_its_loss_decreases(tmp_path):
    result = train(load_recipe(write(tmp_path)), tmp_path / "run")
    curve = losses(tmp_path / "run")
    assert len(curve) == 30 and all(torch.isfinite(torch.tensor(curve)))
    assert sum(curve[-5:]) / 5 < 0.8 * sum(curve[:5]) / 5
    assert result.final_loss == curve[-1]


def test_filip_recipe_with_grad_cache_gives_the_weights_of_plain_training(tmp_path):
    path = write(tmp_path, max_steps=3, checkpoint_every=3)
    plain = train(load_recipe(path), tmp_path / "plain")
    cached = train(load_recipe(path, ["train.grad_cache=true", "train.grad_cache_chunk=10"]), tmp_path / "gc")
    assert abs(plain.final_loss - cached.final_loss) < 1e-5
    a = load_file(str(plain.checkpoint / "model.safetensors"))
    b = load_file(str(cached.checkpoint / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def chunk(rows: range, present_text: torch.Tensor, vec: torch.Tensor) -> Batch:
    idx = torch.arange(len(rows))
    keep = present_text[rows.start : rows.stop]
    texts = [t for t, k in zip(TEXTS[rows.start : rows.stop], keep.tolist(), strict=True) if k]
    return Batch(
        ids=[str(i) for i in rows],
        views={
            "text": ModalityBatch(texts, idx[keep]),
            "vec": ModalityBatch(vec[rows.start : rows.stop], idx),
        },
        present={"text": keep, "vec": torch.ones(len(rows), dtype=torch.bool)},
        targets={"group": torch.arange(rows.start, rows.stop)},
    )


def test_grad_cache_token_gradients_equal_one_graph():
    gen = torch.Generator().manual_seed(0)
    vec = torch.randn(7, 4, generator=gen)
    present = torch.tensor([True, True, False, True, True, True, True])
    chunks = [chunk(range(a, min(a + 3, 7)), present, vec) for a in range(0, 7, 3)]

    def build():
        torch.manual_seed(3)
        return build_model(TOWERS, 6).train(), FilipObjective(rows_per_tile=2)

    def grads(model, objective):
        return [p.grad for p in (*model.parameters(), *objective.parameters())]

    model, objective = build()
    torch.manual_seed(7)
    out = grad_cache_backward(model, objective, chunks, device=torch.device("cpu"), token_views=["text"])
    cached = [g.clone() for g in grads(model, objective)]

    model, objective = build()
    torch.manual_seed(7)
    emb, toks, masks = [], [], []
    for c in chunks:
        e, kw = embed_with_tokens(model, c, ["text"])
        emb.append(e)
        toks.append(kw["tokens"]["text"])
        masks.append(kw["token_masks"]["text"])
    width = max(t.shape[1] for t in toks)
    tokens = torch.cat([torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[1])) for t in toks])
    mask = torch.cat([torch.nn.functional.pad(m.float(), (0, width - m.shape[1])).bool() for m in masks])
    plain = objective(
        {v: torch.cat([e[v] for e in emb]) for v in TOWERS},
        {v: torch.cat([c.present[v] for c in chunks]) for v in TOWERS},
        tokens={"text": tokens},
        token_masks={"text": mask},
    )
    plain.loss.backward()
    torch.testing.assert_close(out.loss, plain.loss)
    for got, want in zip(cached, grads(model, objective), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert model.towers["text"].encoder.bag.weight.grad.abs().sum() > 0
