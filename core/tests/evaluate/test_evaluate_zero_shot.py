from __future__ import annotations

import math

import pytest
import torch
from scibind import create_head
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext
from scibind.evaluate.zero_shot import ZeroShotTask, class_embeddings


def fake_text(calls: list[list[str]]):
    def encode(prompts: list[str]) -> torch.Tensor:
        calls.append(list(prompts))
        rows = []
        for p in prompts:
            base = [3.0, 0.0] if "cat" in p else [0.0, 3.0]
            rows.append(
                [
                    base[0] + (3.0 if p.startswith("a sample") and "dog" in p else 0.0),
                    base[1] + (3.0 if p.startswith("a sample") and "cat" in p else 0.0),
                ]
            )
        return torch.tensor(rows)

    return encode


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def make_ctx(encode=None) -> EvalContext:
    angles = [0, 40, 50, 90, 10, 0]
    return EvalContext(
        ids=[f"r{i}" for i in range(6)],
        embeddings={"v": torch.tensor([unit(a) for a in angles[:5]] + [[0.0, 0.0]])},
        present={"v": torch.tensor([True] * 5 + [False])},
        labels={"kind": ["c", "c", "c", "d", None, "d"]},
        encode_text=encode,
        text_view="text" if encode else None,
    )


def test_prompt_ensemble_is_renormalised_mean_of_normalised_prompts() -> None:
    calls: list[list[str]] = []
    protos = class_embeddings(fake_text(calls), ["cat", "dog"], ["{}", "a sample of {}"])
    assert calls == [["cat", "a sample of cat", "dog", "a sample of dog"]]
    # cat: mean of (1,0) and (1,1)/sqrt2 -> direction 22.5 deg; dog: mean of (0,1) and (1,1)/sqrt2 -> 67.5 deg
    assert protos[0].tolist() == pytest.approx(unit(22.5), abs=1e-6)
    assert protos[1].tolist() == pytest.approx(unit(67.5), abs=1e-6)


def test_zero_shot_metrics_by_hand() -> None:
    calls: list[list[str]] = []
    task = ZeroShotTask("kind", "v", classnames={"c": "cat", "d": "dog"})
    out = task(make_ctx(fake_text(calls)))
    # records at 0, 40 (-> cat), 50 (-> dog, wrong), 90 (-> dog); unlabelled and absent records are skipped
    assert out["zero_shot/v/n"] == 4
    assert out["zero_shot/v/n_classes"] == 2
    assert out["zero_shot/v/accuracy"] == pytest.approx(3 / 4)
    assert out["zero_shot/v/balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert out["zero_shot/v/macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert calls[0][0] == "cat"


def test_single_template_changes_the_prototypes() -> None:
    out = ZeroShotTask("kind", "v", templates=["{}"], classnames={"c": "cat", "d": "dog"})(
        make_ctx(fake_text([]))
    )
    # prototypes at 0 and 90 deg: 0, 40 -> cat; 50, 90 -> dog
    assert out["zero_shot/v/accuracy"] == pytest.approx(3 / 4)


def test_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="no text tower"):
        ZeroShotTask("kind", "v")(make_ctx(None))
    with pytest.raises(ConfigError, match="exactly one"):
        ZeroShotTask("kind", "v", templates=["no placeholder"])
    with pytest.raises(ConfigError, match="label column 'nope'"):
        ZeroShotTask("nope", "v")(make_ctx(fake_text([])))
    with pytest.raises(ConfigError, match="view 'w'"):
        ZeroShotTask("kind", "w")(make_ctx(fake_text([])))
    ctx = make_ctx(fake_text([]))
    ctx.labels["kind"] = ["c", "c", None, None, None, None]
    with pytest.raises(DataError, match="at least 2"):
        ZeroShotTask("kind", "v")(ctx)


def test_registered_head() -> None:
    out = create_head("core/zero-shot", label="kind", view="v", classnames={"c": "cat", "d": "dog"})(
        make_ctx(fake_text([]))
    )
    assert out["zero_shot/v/accuracy"] == pytest.approx(3 / 4)


def test_two_zero_shot_tasks_on_one_view_need_their_own_key() -> None:
    from scibind.evaluate.runner import evaluate

    class Embedded:
        def context(self, encode_text, text_view):
            return make_ctx(encode_text)

    tasks = [
        {"name": "core/zero-shot", "label": "kind", "view": "v", "classnames": {"c": "cat", "d": "dog"}},
        {"name": "core/zero-shot", "label": "kind", "view": "v", "templates": ["{}"]},
    ]
    with pytest.raises(ConfigError, match="`key` for zero-shot tasks"):
        evaluate(Embedded(), tasks, encode_text=fake_text([]))
    tasks[1]["key"] = "v/plain"
    out = evaluate(Embedded(), tasks, encode_text=fake_text([]))
    assert out["zero_shot/v/accuracy"] == pytest.approx(3 / 4)
    assert out["zero_shot/v/plain/n"] == 4
