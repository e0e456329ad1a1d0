"""``medical_imaging/findings``: per-finding AUROC from positive vs negative prompts, checked by hand."""

from __future__ import annotations

import pytest
import torch
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext
from scibind_medical_imaging.findings import FindingsTask, auroc, prompt_embedding

PROMPTS = {
    "a yes": [1.0, 0.0],
    "a no": [0.0, 1.0],
    "b yes": [0.0, 1.0],
    "b no": [1.0, 0.0],
    "c yes": [-1.0, 0.0],
    "calcified": [3.0, 0.0],  # not unit: prompts are normalised before averaging
    "solid": [0.0, 2.0],
}


def encode_text(prompts: list[str]) -> torch.Tensor:
    return torch.tensor([PROMPTS[p] for p in prompts])


def context(encode=encode_text) -> EvalContext:
    # score of finding a = x0 - x1: r0 1, r1 -0.2 (a); r2 0.2, r3 -1 (b); r4 has no label, r5 no image.
    emb = torch.tensor([[1, 0], [0.6, 0.8], [0.8, 0.6], [0, 1], [1, 0], [0, 0]], dtype=torch.float32)
    return EvalContext(
        ids=[f"r{i}" for i in range(6)],
        embeddings={"img": emb},
        present={"img": torch.tensor([True, True, True, True, True, False])},
        labels={"loc": ["a", "a", "b", "b", None, "a"], "kind": ["calcified", "solid"] * 3},
        encode_text=encode,
    )


def test_auroc_counts_pairs_and_half_ties():
    sklearn = pytest.importorskip("sklearn.metrics")
    assert auroc([1.0, 1.0], [True, False]) == 0.5
    assert auroc([3, 2, 1], [True, False, True]) == 0.5
    assert auroc([0.9, 0.1, 0.5, 0.5], [True, False, True, False]) == 0.875  # (1 + 1 + 1 + 0.5) / 4
    assert auroc([0.9, 0.1, 0.5, 0.5], [True, False, True, False]) == sklearn.roc_auc_score(
        [1, 0, 1, 0], [0.9, 0.1, 0.5, 0.5]
    )
    with pytest.raises(DataError, match="positives and negatives"):
        auroc([0.1, 0.2], [True, True])


def test_prompt_ensemble_is_the_renormalised_mean_of_unit_prompts():
    emb = prompt_embedding(encode_text, ["calcified", "solid"])
    assert torch.allclose(emb, torch.tensor([2**-0.5, 2**-0.5]))


def test_per_finding_auroc_from_negated_prompts_by_hand():
    task = FindingsTask(view="img", label="loc", positive="{} yes", negative=["{} no"])
    out = task(context())
    # finding a: positives {1, -0.2} vs negatives {0.2, -1}: 3 of 4 pairs ordered; b is the mirror image.
    assert out["findings/img/a/auroc"] == 0.75 and out["findings/img/b/auroc"] == 0.75
    assert out["findings/img/macro_auroc"] == 0.75
    assert (out["findings/img/a/n_pos"], out["findings/img/a/n_neg"]) == (2.0, 2.0)
    assert out["findings/img/n"] == 4.0 and out["findings/img/n_findings"] == 2.0


def test_one_vs_rest_explicit_findings_and_prefix():
    # Without negative templates, a's negative prompt is b's positive one: the same scores as above.
    task = FindingsTask(
        view="img",
        label="loc",
        positive="{} yes",
        prefix="vs-rest",
        findings=[
            {"name": "calcified nodule", "label": "kind", "value": "calcified", "positive": "calcified",
             "negative": ["solid"]},
        ],
    )  # fmt: skip
    out = task(context())
    assert out["vs-rest/img/a/auroc"] == 0.75 and out["vs-rest/img/b/auroc"] == 0.75
    # calcified: r0 (1), r2 (0.2), r4 (1) vs solid r1 (-0.2), r3 (-1): every pair ordered.
    assert out["vs-rest/img/calcified_nodule/auroc"] == 1.0
    assert out["vs-rest/img/n_findings"] == 3.0 and out["vs-rest/img/n"] == 5.0
    assert out["vs-rest/img/macro_auroc"] == pytest.approx((0.75 + 0.75 + 1.0) / 3)


def test_a_finding_without_negatives_is_undefined_not_an_error():
    task = FindingsTask(view="img", label="loc", positive="{} yes", negative="{} no", values=["a"])
    ctx = context()
    ctx.labels["loc"] = ["a", "a", "b", "b", None, "a"]
    out = task(ctx)
    assert out["findings/img/a/auroc"] == 0.75 and out["findings/img/n_undefined"] == 0.0
    ctx.labels["loc"] = ["a", "a", "a", "a", None, "a"]
    with pytest.raises(DataError, match="no finding has both"):
        task(ctx)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"label": "loc", "positive": "{} yes", "negative": "no"}, "exactly one"),
        ({"label": "loc", "negative": "{} no"}, "positive must be"),
        ({"positive": "{} yes"}, "need a label"),
        ({}, "give findings"),
        ({"findings": [{"label": "loc", "value": "a", "positive": "a yes"}]}, r"missing \['negative'\]"),
        ({"label": "loc", "positive": "{}", "prefix": "a/b"}, "prefix"),
    ],
)
def test_bad_options_are_named(options: dict[str, object], problem: str):
    with pytest.raises(ConfigError, match=problem):
        FindingsTask(view="img", **options)


def test_runtime_errors_name_the_problem():
    task = FindingsTask(view="img", label="loc", positive="{} yes", negative="{} no")
    with pytest.raises(ConfigError, match="no text tower"):
        task(context(encode=None))
    with pytest.raises(ConfigError, match="not embedded"):
        FindingsTask(view="ct", label="loc", positive="{} yes", negative="{} no")(context())
    with pytest.raises(ConfigError, match="label column 'site'"):
        FindingsTask(view="img", label="site", positive="{} yes", negative="{} no")(context())
    with pytest.raises(DataError, match=r"values \['c'\]"):
        FindingsTask(view="img", label="loc", positive="{} yes", negative="{} no", values=["c"])(context())


def test_head_is_registered(scibind_registry):
    import scibind

    spec = scibind_registry.get("heads", "medical_imaging/findings")
    assert spec.task == "findings"
    head = scibind.create_head("medical_imaging/findings", view="img", label="loc", positive="{} yes")
    assert head(context())["findings/img/macro_auroc"] == 0.75
