"""MGCA: the three-level objective, ResNet feature-map tokens and the radiograph <-> report recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from scibind_testkit import ObjectiveContract


class TestMgcaObjective(ObjectiveContract):
    objective_name = "medical_imaging/mgca"
    objective_kwargs = {"embed_dim": 16, "n_prototypes": 4}
    # The prototype level balances codes over the rows it sees (Sinkhorn), like core/prototype.
    mask_equals_subset = True


def _inputs(
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    embeddings = {v: torch.randn(6, 16, generator=gen) for v in ("xray", "report")}
    tokens = {"xray": torch.randn(6, 4, 16, generator=gen), "report": torch.randn(6, 5, 16, generator=gen)}
    masks = {"xray": torch.ones(6, 4, dtype=torch.bool), "report": torch.rand(6, 5, generator=gen) > 0.3}
    masks["report"][:, 0] = True
    return embeddings, tokens, masks


def test_loss_is_the_weighted_sum_of_the_three_core_objectives():
    import scibind

    weights = {"instance_weight": 0.7, "token_weight": 1.3, "prototype_weight": 0.4}
    mgca = scibind.create_objective("medical_imaging/mgca", embed_dim=16, n_prototypes=4, **weights)
    clip = scibind.create_objective("core/clip", temperature=0.07)
    filip = scibind.create_objective("core/filip", temperature=0.07)
    proto = scibind.create_objective("core/prototype", embed_dim=16, n_prototypes=4, temperature=0.1)
    embeddings, tokens, masks = _inputs()
    with torch.no_grad():
        out = mgca(embeddings, tokens=tokens, token_masks=masks)
        parts = (
            clip(embeddings).loss,
            filip(embeddings, tokens=tokens, token_masks=masks).loss,
            proto(embeddings).loss,
        )
    expected = 0.7 * parts[0] + 1.3 * parts[1] + 0.4 * parts[2]
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.parts["token_loss"], parts[1])
    # The tokens reach the token level: without them it is CLIP on the pooled embeddings.
    with torch.no_grad():
        pooled = mgca(embeddings).parts["token_loss"]
    torch.testing.assert_close(pooled, parts[0])
    assert abs(float(pooled) - float(parts[1])) > 1e-3


def test_zero_weight_skips_a_level_and_all_zero_is_refused():
    import scibind
    from scibind.errors import ConfigError

    mgca = scibind.create_objective("medical_imaging/mgca", embed_dim=16, token_weight=0.0)
    embeddings, tokens, masks = _inputs(1)
    out = mgca(embeddings, tokens=tokens, token_masks=masks)
    assert "token_loss" not in out.parts and {"instance_loss", "prototype_loss"} <= set(out.parts)
    assert mgca.needs_tokens and mgca.token_views is None
    with pytest.raises(ConfigError, match="weights"):
        scibind.create_objective(
            "medical_imaging/mgca", embed_dim=16, instance_weight=0, token_weight=0, prototype_weight=0
        )


def test_resnet_tokens_are_feature_map_cells_whose_mean_is_the_embedding():
    import scibind

    encoder = scibind.create_encoder("medical_imaging/tiny-2d", conv1_stride=1, no_max_pool=True).eval()
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = encoder.forward_tokens(x)
        pooled = encoder(x)
    assert tuple(tokens.shape) == (3, 16, 64)  # 32 -> 32 -> 16 -> 8 -> 4: a 4 x 4 grid
    torch.testing.assert_close(tokens.mean(1), pooled, atol=1e-5, rtol=1e-5)
    # A bright spot in the top-left corner changes the top-left cell more than the bottom-right one.
    spot = x.clone()
    spot[:, :, :6, :6] += 3.0
    with torch.no_grad():
        change = (encoder.forward_tokens(spot) - tokens).norm(dim=-1).mean(0)
    assert change[0] > change[15]


def test_dataset_outcome_depends_on_image_side_and_table_jointly(tmp_path: Path):
    import pandas as pd
    import scibind
    from PIL import Image

    manifest = scibind.create_dataset("medical_imaging/synthetic-chest-xray", tmp_path / "a", n=40, seed=1)
    again = scibind.create_dataset("medical_imaging/synthetic-chest-xray", tmp_path / "b", n=40, seed=1)
    assert manifest.read_bytes() == again.read_bytes()
    frame = pd.read_csv(manifest)
    hypoxic = frame["spo2_pct"] < 92
    for (side, low), outcome in {
        ("right", True): "intensive care",
        ("right", False): "ward admission",
        ("left", True): "home oxygen",
        ("left", False): "discharged home",
    }.items():
        rows = frame[(frame["side"] == side) & (hypoxic == low)]
        assert len(rows) and set(rows["outcome_class"]) == {outcome}
        assert all(outcome in text for text in rows["outcome"])
    labs = json.loads(frame.loc[0, "labs"])
    assert len(labs) == 5 and labs[1] == pytest.approx((frame.loc[0, "spo2_pct"] - 93.0) / 4.0, abs=1e-3)
    xor = pd.read_csv(
        scibind.create_dataset(
            "medical_imaging/synthetic-chest-xray", tmp_path / "c", n=40, seed=1, outcome_rule="xor"
        )
    )
    admitted = (xor["side"] == "right") != (xor["spo2_pct"] < 92)
    assert (xor["outcome_class"] == admitted.map({True: "admitted", False: "discharged home"})).all()
    assert set(xor["outcome_class"]) == {"admitted", "discharged home"}
    image = Image.open(manifest.parent / frame.loc[0, "xray"])
    assert image.size == (32, 32) and image.mode == "L"
    assert frame["id"].str.startswith("xr-").all() and not frame["id"].str.contains("SYNTH").any()


def test_mgca_recipe_trains_above_chance(tmp_path: Path):
    from scibind.train import load_recipe, train

    recipe = load_recipe(
        "medical_imaging/synthetic-xray-mgca",
        [
            "train.max_steps=30",
            "train.checkpoint_every=30",
            "data.dataset_kwargs.n=160",
            "train.warmup_steps=5",
        ],
    )
    train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["xray->report/R@5"] > 2 * metrics["xray->report/R@5_chance"]
    assert metrics["zero_shot/xray/accuracy"] > 0.25 + 0.15  # four lobes
    assert metrics["findings-vs-rest/xray/macro_auroc"] > 0.65
    log = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    parts = json.loads(log[-1])["parts"]
    assert {"instance_loss", "token_loss", "prototype_loss"} <= set(parts)
