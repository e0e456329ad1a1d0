"""MoRE-style three views: multilinear-inner-product retrieval and the core/symile recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from scibind.evaluate.context import EvalContext
from scibind_testkit import HeadContract


def _context(n: int = 12, seed: int = 0) -> EvalContext:
    gen = torch.Generator().manual_seed(seed)
    embeddings = {
        v: F.normalize(torch.randn(n, 8, generator=gen), dim=-1) for v in ("xray", "labs", "outcome")
    }
    present = {v: torch.ones(n, dtype=torch.bool) for v in embeddings}
    labels = {"outcome_class": [("a", "b", "c")[i % 3] for i in range(n)]}
    return EvalContext(ids=[f"r{i}" for i in range(n)], embeddings=embeddings, present=present, labels=labels)


class TestMipRetrieval(HeadContract):
    head_name = "medical_imaging/mip-retrieval"
    head_kwargs = {"queries": ["xray", "labs"], "target": "outcome", "label": "outcome_class"}

    def make_head_input(self) -> EvalContext:
        return _context()


def test_ranks_follow_the_multilinear_inner_product_not_pairwise_cosines():
    from scibind_medical_imaging.mip import MipRetrievalTask

    # Record i's target is the element-wise product of its two queries: pairwise cosines of the queries
    # with the targets are uninformative, the three-way product picks the right record.
    gen = torch.Generator().manual_seed(3)
    n = 20
    x = torch.sign(torch.randn(n, 32, generator=gen))
    y = torch.sign(torch.randn(n, 32, generator=gen))
    ctx = EvalContext(
        ids=[str(i) for i in range(n)],
        embeddings={"xray": x / 32**0.5, "labs": y / 32**0.5, "outcome": x * y / 32**0.5},
        present={v: torch.ones(n, dtype=torch.bool) for v in ("xray", "labs", "outcome")},
    )
    out = MipRetrievalTask(["xray", "labs"], "outcome")(ctx)
    assert out["mip/xray+labs->outcome/R@1"] == 1.0 and out["mip/xray+labs->outcome/n"] == 20.0
    assert out["mip/xray+labs->outcome/R@1_chance"] == pytest.approx(1 / 20)
    # Brute force: the rank of the record's own target under sum_d x_d y_d z_d, for a random context.
    ctx = _context(seed=5)
    scores = torch.einsum(
        "id,id,jd->ij", ctx.embeddings["xray"], ctx.embeddings["labs"], ctx.embeddings["outcome"]
    )
    ranks = (scores > scores.diag()[:, None]).sum(1) + 1
    got = MipRetrievalTask(["xray", "labs"], "outcome", prefix="m")(ctx)
    assert got["m/xray+labs->outcome/MRR"] == pytest.approx(float((1.0 / ranks.double()).mean()))


def test_absent_views_and_bad_options():
    from scibind.errors import ConfigError
    from scibind_medical_imaging.mip import MipRetrievalTask

    ctx = _context(n=12)
    ctx.present["labs"][:4] = False
    out = MipRetrievalTask(["xray", "labs"], "outcome", label="outcome_class")(ctx)
    assert out["mip/xray+labs->outcome/n"] == 8.0
    with pytest.raises(ConfigError, match="two or more"):
        MipRetrievalTask(["xray"], "outcome")
    with pytest.raises(ConfigError, match="not embedded"):
        MipRetrievalTask(["xray", "ecg"], "outcome")(ctx)


def test_more_recipe_retrieves_outcomes_from_image_and_table_above_chance(tmp_path: Path):
    from scibind.train import load_recipe, train

    recipe = load_recipe(
        "medical_imaging/synthetic-xray-more",
        [
            "train.max_steps=40",
            "train.checkpoint_every=40",
            "data.dataset_kwargs.n=160",
            "train.warmup_steps=5",
        ],
    )
    train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    key = "mip/xray+labs->outcome"
    # Four outcome classes: a random ranking puts a correct outcome first about a third of the time.
    assert metrics[f"{key}/R@1"] > metrics[f"{key}/R@1_chance"] + 0.15
    assert metrics[f"{key}/MRR"] > metrics[f"{key}/MRR_chance"] + 0.1


def test_sum_score_ranks_by_the_sum_of_pairwise_cosines():
    from scibind_medical_imaging.mip import MipRetrievalTask

    ctx = _context(seed=7)
    e = ctx.embeddings
    scores = (e["xray"] + e["labs"]) @ e["outcome"].T
    ranks = (scores > scores.diag()[:, None]).sum(1) + 1
    got = MipRetrievalTask(["xray", "labs"], "outcome", score="sum", prefix="s")(ctx)
    assert got["s/xray+labs->outcome/MRR"] == pytest.approx(float((1.0 / ranks.double()).mean()))
    mip = MipRetrievalTask(["xray", "labs"], "outcome")(ctx)
    assert got["s/xray+labs->outcome/MRR"] != pytest.approx(mip["mip/xray+labs->outcome/MRR"])


@pytest.mark.slow
def test_symile_learns_an_outcome_no_single_view_carries(tmp_path: Path):
    """``outcome_rule=xor``: admitted iff right side XOR hypoxaemic; pairwise cosines stay at chance."""
    from scibind.train import load_recipe, train

    recipe = load_recipe(
        "medical_imaging/synthetic-xray-more",
        [
            "train.max_steps=100",
            "train.checkpoint_every=100",
            "data.dataset_kwargs.n=320",
            "data.dataset_kwargs.outcome_rule=xor",
            "train.warmup_steps=5",
        ],
    )
    train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    mip, pairwise = "mip/xray+labs->outcome", "cosine-sum/xray+labs->outcome"
    assert metrics[f"{mip}/R@1"] > metrics[f"{mip}/R@1_chance"] + 0.15  # two outcomes: chance about 0.5
    assert metrics[f"{mip}/R@1"] > metrics[f"{pairwise}/R@1"] + 0.15
