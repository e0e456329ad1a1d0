"""Molecules/s of scibind's featurizer against PyG's ``from_smiles`` and RDKit parsing alone, in one run.

Usage::

    python benchmarks/featurize.py [--n 10000] [--repeats 3] [--chebi PATH]

The SMILES are real: RDKit's bundled NCI set (``rdkit/Data/NCI/first_5K.smi``) plus, when found, the
ChEBI-20 validation split of the shared data folder, cycled to ``--n``. Each method runs ``--repeats`` times,
interleaved, and the best run counts (timings on shared machines move +-20-30 %; compare the ratios).
With the default ``--n 10000`` about a fifth of the strings repeat (8,192 are distinct) and scibind
featurizes each distinct string once per call; ``--n 8000`` times distinct strings only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import warnings
from pathlib import Path


def real_smiles(n: int, chebi: Path | None) -> list[str]:
    """``n`` real SMILES: NCI (bundled with RDKit) and ChEBI-20 validation, interleaved and cycled."""
    import rdkit

    nci_file = Path(rdkit.__file__).parent / "Data" / "NCI" / "first_5K.smi"
    nci = [line.split()[0] for line in nci_file.read_text().splitlines() if line.strip()]
    pools = [nci]
    if chebi is not None and chebi.is_file():
        rows = chebi.read_text(encoding="utf-8").splitlines()[1:]
        pools.append([row.split("\t")[1] for row in rows if row.count("\t") >= 2])
    mixed = [s for pair in itertools.zip_longest(*pools) for s in pair if s]
    return list(itertools.islice(itertools.cycle(mixed), n))


def main() -> None:
    """Run the benchmark and print molecules/s and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    default_chebi = Path(__file__).resolve().parents[2] / "shared/data/molecules/chebi20/validation.txt"
    parser.add_argument("--chebi", type=Path, default=default_chebi)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.filterwarnings("ignore")
    from rdkit import Chem, RDLogger
    from scibind_molecules import featurize_smiles
    from torch_geometric.utils import from_smiles

    RDLogger.DisableLog("rdApp.*")
    smiles = real_smiles(args.n, args.chebi)
    featurize_smiles(smiles[:10])  # imports and lookup tables, outside the timing
    from_smiles(smiles[0])

    methods = {
        "rdkit parse only (Chem.MolFromSmiles)": lambda: [Chem.MolFromSmiles(s) for s in smiles],
        "scibind featurize_smiles": lambda: featurize_smiles(smiles, on_error="skip"),
        "PyG from_smiles": lambda: [from_smiles(s) for s in smiles],
    }
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(args.repeats):
        for name, run in methods.items():
            start = time.perf_counter()
            result = run()
            del result
            best[name] = min(best[name], time.perf_counter() - start)
    distinct = len(set(smiles))
    print(f"{len(smiles)} real SMILES ({distinct} distinct, NCI + ChEBI-20), best of {args.repeats}, 1 proc")
    print(f"{'method':40s} {'mol/s':>10s}")
    for name, seconds in best.items():
        print(f"{name:40s} {len(smiles) / seconds:10,.0f}")
    ours = best["scibind featurize_smiles"]
    print(f"scibind / PyG from_smiles: {best['PyG from_smiles'] / ours:.1f}x")
    print(f"scibind / RDKit parse-only: {best['rdkit parse only (Chem.MolFromSmiles)'] / ours:.2f}")


if __name__ == "__main__":
    main()
