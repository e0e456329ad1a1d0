"""The preprocessed-volume cache: second reads hit it, budgets hold, content and options invalidate."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.errors import ConfigError
from scibind_medical_imaging.cache import VolumeCache
from scibind_medical_imaging.pipeline import VolumePipeline, validate
from scibind_medical_imaging.readers import VolumeReader
from scibind_medical_imaging.writers import write_nifti

from .conftest import LAS_AFFINE, ramp_volume


def test_second_read_comes_from_ram_and_equals_the_first(tmp_path: Path):
    path = write_nifti(ramp_volume(), LAS_AFFINE, tmp_path / "a.nii.gz")
    reader = VolumeReader(spacing_mm=[3, 3, 3], window_hu=[-500, 500])
    first = reader.read(str(path), record_id="a")
    second = reader.read(str(path), record_id="a")
    assert (first.meta["cache"], second.meta["cache"]) == ("miss", "ram")
    assert np.array_equal(first.data.numpy(), second.data.numpy())
    second.data.zero_()  # callers may modify their tensor without corrupting the cache
    assert np.array_equal(reader.read(str(path), record_id="a").data.numpy(), first.data.numpy())


def test_changed_content_or_options_miss_the_cache(tmp_path: Path):
    path = write_nifti(ramp_volume(), LAS_AFFINE, tmp_path / "a.nii")
    reader = VolumeReader(window_hu=[-500, 500])
    before = reader.read(str(path), record_id="a")
    write_nifti(ramp_volume() + 100, LAS_AFFINE, path)
    os.utime(path, ns=(1, 1))  # even with an unchanged-looking mtime the size/mtime memo differs
    after = reader.read(str(path), record_id="a")
    assert after.meta["cache"] == "miss" and not np.array_equal(before.data.numpy(), after.data.numpy())
    other = VolumeReader(window_hu=[-400, 500]).read(str(path), record_id="a")
    assert other.meta["cache"] == "miss"


def test_ram_budget_is_never_exceeded_and_disk_tier_serves_evicted(tmp_path: Path):
    cache = VolumeCache(ram_mb=1, disk_dir=tmp_path / "disk", disk_mb=2)
    arrays = {f"k{i}": np.full((64, 64, 32), i, dtype=np.float32) for i in range(6)}  # 0.5 MiB each
    for key, array in arrays.items():
        cache.put(key, array, {"i": key})
        assert cache.ram_used_bytes <= 2**20
    disk = sum(p.stat().st_size for p in (tmp_path / "disk").glob("*.npy"))
    assert disk <= 2 * 2**20
    hit = cache.get("k5")
    assert hit is not None and hit[2] == "ram"
    assert cache.get("k0") is None  # evicted from both tiers
    served = cache.get("k3")  # 3 files of 0.5 MiB + header fit in 2 MiB; k3 left RAM (1 MiB) but not disk
    assert served is not None and served[2] == "disk" and float(served[0].mean()) == 3.0


def test_reader_pickles_for_spawned_workers(tmp_path: Path):
    import pickle

    path = write_nifti(ramp_volume(), LAS_AFFINE, tmp_path / "a.nii.gz")
    reader = VolumeReader(roi_size=[4, 4, 4])
    first = reader.read(str(path), record_id="a")
    clone = pickle.loads(pickle.dumps(reader))
    again = clone.read(str(path), record_id="a")
    assert again.meta["cache"] == "miss" and np.array_equal(again.data.numpy(), first.data.numpy())


@pytest.mark.parametrize(
    "name",
    ["synthetic-ct-report", "synthetic-ct-report-soft", "synthetic-ct-report-mgca", "synthetic-ct-xray"],
)
def test_recipes_configure_the_reader_with_reader_kwargs(tmp_path: Path, name: str):
    from scibind.train import load_recipe
    from scibind.train.run import view_configs
    from scibind_medical_imaging.synthetic import DEMO_READER_OPTIONS

    recipe = load_recipe(f"medical_imaging/{name}", ["towers.ct.reader_kwargs.roi_size=[4,4,4]"])
    reader = view_configs(recipe)["ct"].reader
    assert isinstance(reader, VolumeReader)
    pipeline, cache = reader.config()
    assert pipeline.roi_size == (4, 4, 4) and pipeline.spacing_mm == (2.0, 2.0, 2.0)
    assert cache.ram_bytes == DEMO_READER_OPTIONS["cache_ram_mb"] * 2**20
    write_nifti(ramp_volume(), LAS_AFFINE, tmp_path / "a.nii.gz")
    (tmp_path / "medical_imaging.yaml").write_text("ct_volume:\n  roi_size: [8, 8, 8]\n", encoding="utf-8")
    sample = reader.read("a.nii.gz", record_id="a", base_dir=tmp_path)  # a stale sidecar file is ignored
    assert tuple(sample.data.shape) == (1, 4, 4, 4) and sample.meta["orientation"] == "RAS"
    recipe = load_recipe(f"medical_imaging/{name}", ["towers.ct.reader_kwargs.roi=[4,4,4]"])
    with pytest.raises(ConfigError, match=r"roi.*valid options"):
        view_configs(recipe)


spacings = st.lists(st.floats(0.1, 10, allow_nan=False), min_size=3, max_size=3)


@settings(max_examples=40, deadline=None)
@given(spacings, st.sampled_from(["RAS", "lps", "PIR", None]), st.booleans())
def test_pipeline_options_validate_and_hash_stably(spacing: list[float], orientation: str | None, roi: bool):
    options = {"spacing_mm": spacing, "orientation": orientation, "roi_size": [8, 8, 8] if roi else None}
    pipeline = validate(VolumePipeline, options, "test")
    assert pipeline.spacing_mm == tuple(spacing)
    assert pipeline.orientation == (orientation.upper() if orientation else None)
    assert pipeline.digest() == validate(VolumePipeline, dict(options), "test").digest()
    assert pipeline.digest() != validate(VolumePipeline, {**options, "window_hu": [0, 1]}, "test").digest()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"orientation": "RRS"}, "axis codes"),
        ({"spacing_mm": [1, 0, 1]}, "positive"),
        ({"window_hu": [100, -100]}, "low < high"),
        ({"normalise": "zscore"}, "valid options"),
    ],
)
def test_bad_pipeline_options_are_named(options: dict[str, object], problem: str):
    with pytest.raises(ConfigError, match=problem):
        VolumeReader(**options)
