"""Shared fixtures: the real CMU slide, a multi-level pyramid built from it, small synthetic slides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CMU_NAME = "CMU-1-Small-Region.svs"
CMU_MPP = 0.499


@pytest.fixture(autouse=True)
def _feature_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every feature cache inside the test's folder."""
    monkeypatch.setenv("SCIBIND_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def cmu_slide(shared_data_dir: Path) -> Path:
    """The real Aperio SVS (2220 x 2967 px, 0.499 µm/px, one level)."""
    path = shared_data_dir / "pathology" / CMU_NAME
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="session")
def cmu_pixels(cmu_slide: Path) -> np.ndarray:
    """Level 0 of the CMU slide as RGB."""
    import openslide

    with openslide.OpenSlide(str(cmu_slide)) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))


@pytest.fixture(scope="session")
def cmu_pyramid(cmu_pixels: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CMU pixels (cropped to 2220 x 2964, so levels halve exactly) as a 3-level JPEG pyramidal TIFF."""
    from scibind_pathology.synthetic import write_pyramid

    path = tmp_path_factory.mktemp("pyramid") / "cmu-pyramid.tif"
    return write_pyramid(path, cmu_pixels[:2964], CMU_MPP, levels=3, tile=256)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """The demo recipe trained once on 48 synthetic slides: ``(run folder, final metrics)``."""
    from scibind.train import load_recipe, train

    recipe = load_recipe(
        "pathology/slide-report-clip",
        [
            "data.dataset_kwargs.n=48",
            "train.max_steps=60",
            "train.batch_size=16",
            "train.checkpoint_every=60",
        ],
    )
    run = tmp_path_factory.mktemp("demo") / "run"
    return run, train(recipe, run).metrics
