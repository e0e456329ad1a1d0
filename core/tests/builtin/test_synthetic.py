from __future__ import annotations

import numpy as np
import pytest
import scibind
from scibind.builtin.synthetic import make_synthetic_pairs
from scibind.data.dataset import PairedDataset
from scibind.data.manifest import read_manifest
from scibind.errors import ConfigError


def test_writes_a_valid_group_safe_parquet_manifest(tmp_path):
    path = make_synthetic_pairs(tmp_path)
    assert path == tmp_path / "manifest.parquet"
    m = read_manifest(path, views=["view_a", "view_b"])  # also checks no group spans two splits
    assert len(m) == 2000 and m.label_columns == ("label",)
    assert set(m.frame["label"]) == {f"class_{i}" for i in range(5)}
    assert m.frame["group"].nunique() == 100
    counts = m.frame["split"].value_counts()
    assert set(counts.index) == {"train", "eval"}
    assert abs(counts["eval"] - 400) <= 40
    a = np.stack(m.view_values("view_a"))
    b = np.stack(m.view_values("view_b"))
    assert a.shape == (2000, 32) and b.shape == (2000, 48) and a.dtype == np.float32
    assert np.isfinite(a).all() and np.isfinite(b).all()


def test_views_share_a_latent_that_predicts_the_label(tmp_path):
    m = read_manifest(make_synthetic_pairs(tmp_path, seed=3), views=["view_a", "view_b"])
    train = m.frame["split"].to_numpy() == "train"
    a = np.stack(m.view_values("view_a")).astype(np.float64)
    b = np.stack(m.view_values("view_b")).astype(np.float64)
    # A linear map fitted on train predicts eval view_b from view_a: retrieval far above chance (1/400).
    design = np.c_[a, np.ones(len(a))]
    weights, *_ = np.linalg.lstsq(design[train], b[train], rcond=None)
    pred, target = design[~train] @ weights, b[~train]
    dist = ((pred[:, None, :] - target[None, :, :]) ** 2).sum(-1)
    top1 = (dist.argmin(1) == np.arange(len(target))).mean()
    assert top1 > 0.2
    # Nearest class mean in view_a classifies well above chance (0.2).
    labels = m.frame["label"].to_numpy()
    classes = sorted(set(labels))
    means = np.stack([a[train & (labels == c)].mean(0) for c in classes])
    guess = np.array(classes)[((a[~train, None, :] - means[None]) ** 2).sum(-1).argmin(1)]
    assert (guess == labels[~train]).mean() > 0.8


def test_deterministic_per_seed(tmp_path):
    first = make_synthetic_pairs(tmp_path / "a", n=300, seed=5, missing_fraction=0.2)
    second = make_synthetic_pairs(tmp_path / "b", n=300, seed=5, missing_fraction=0.2)
    other = make_synthetic_pairs(tmp_path / "c", n=300, seed=6, missing_fraction=0.2)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    a, b, c = (read_manifest(p).frame for p in (first, second, other))
    assert a.drop(columns=["view_a", "view_b"]).equals(b.drop(columns=["view_a", "view_b"]))
    assert a["label"].tolist() != c["label"].tolist()


def test_missing_fraction_drops_one_view_never_both(tmp_path):
    m = read_manifest(
        make_synthetic_pairs(tmp_path, n=1000, missing_fraction=0.3, seed=1), views=["view_a", "view_b"]
    )
    pa_, pb = m.present("view_a"), m.present("view_b")
    assert (pa_ | pb).all()
    assert abs((~(pa_ & pb)).mean() - 0.3) < 0.05
    assert (~pa_).sum() > 100 and (~pb).sum() > 100


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_formats_hold_the_same_records(tmp_path, fmt):
    parquet = read_manifest(make_synthetic_pairs(tmp_path / "p", n=50, missing_fraction=0.2))
    other_path = make_synthetic_pairs(tmp_path / "o", n=50, missing_fraction=0.2, format=fmt)
    assert other_path.name == f"manifest.{fmt}"
    views = {"view_a": "vector", "view_b": "vector"}
    ds_p = PairedDataset(parquet, views, labels=["label"])
    ds_o = PairedDataset(read_manifest(other_path), views, labels=["label"])
    for i in range(50):
        x, y = ds_p[i], ds_o[i]
        assert x["id"] == y["id"] and x["targets"] == y["targets"]
        for view in views:
            assert (x["views"][view] is None) == (y["views"][view] is None)
            if x["views"][view] is not None:
                assert x["views"][view].tolist() == y["views"][view].tolist()


def test_registered_as_core_dataset(tmp_path):
    path = scibind.create_dataset("core/synthetic-pairs", tmp_path, n=20, n_groups=4)
    assert len(read_manifest(path)) == 20


@pytest.mark.parametrize("kwargs", [{"format": "xlsx"}, {"n": 0}, {"missing_fraction": 1.5}, {"noise": -1}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        make_synthetic_pairs(tmp_path, **kwargs)
