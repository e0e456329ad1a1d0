"""Nuclei on the real DNA channel agree with CellProfiler's; crops have the right shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scibind_cell_painting.cells import crop_cells, find_nuclei

FOLDER = "cellpainting/images/BR00143976_r03c03f03"


def test_nuclei_match_cellprofiler_centres(shared_data_dir):
    import tifffile

    folder = shared_data_dir / FOLDER
    dna = tifffile.imread(folder / "r03c03f03p01-ch5sk1fk1fl1.tiff")  # ch5 = DNA
    centres = find_nuclei(dna[::2, ::2], min_area_px=40) * 2  # half resolution keeps the test fast
    cells = pd.read_parquet(folder / "BR00143976_shrunken.parquet")
    reference = cells[["Nuclei_Location_Center_Y", "Nuclei_Location_Center_X"]].to_numpy()
    distances = np.linalg.norm(reference[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
    assert len(centres) >= 5
    assert np.all(distances < 20), distances  # every CellProfiler nucleus has a detected one nearby (px)


def test_crops_skip_cells_at_the_border():
    pixels = np.arange(2 * 20 * 20, dtype=np.float32).reshape(2, 20, 20)
    crops, kept = crop_cells(pixels, np.array([[10.0, 10.0], [1.0, 1.0], [15.0, 5.0]]), 8)
    assert crops.shape == (2, 2, 8, 8) and kept.tolist() == [0, 2]
    assert crops[0, 1, 0, 0] == pixels[1, 6, 6]
