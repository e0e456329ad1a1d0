"""The molecules plugin's components pass the testkit contracts."""

from __future__ import annotations

from pathlib import Path

import torch
from scibind_testkit import EncoderContract, HeadContract, PluginContract, ReaderContract

SDF_OK = """ethanol
  scibind

  3  2  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.5000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    2.0000    1.2000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  2  3  1  0
M  END
> <name>
ethanol

$$$$
"""

SDF_BROKEN = """broken
  scibind

  2  1  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
M  END
$$$$
"""


class TestMoleculesPlugin(PluginContract):
    plugin_name = "molecules"


class TestInlineSmilesReader(ReaderContract):
    reader_name = "molecules/molecule"

    def make_valid_input(self, tmp_path: Path) -> str:
        return "CC(=O)Oc1ccccc1C(=O)O"

    def make_bad_input(self, tmp_path: Path) -> str:
        return "C(C)(C)(C)(C)C"


class TestSDFReader(ReaderContract):
    reader_name = "molecules/molecule"

    def make_valid_input(self, tmp_path: Path) -> str:
        path = tmp_path / "ethanol.sdf"
        path.write_text(SDF_OK, encoding="utf-8")
        return str(path)

    def make_bad_input(self, tmp_path: Path) -> str:
        path = tmp_path / "broken.sdf"
        path.write_text(SDF_BROKEN, encoding="utf-8")
        return str(path)


def _graphs(n: int) -> list:
    from scibind_molecules.featurize import featurize_smiles

    smiles = ["CCO", "c1ccccc1O", "CC(=O)N", "C1CCNCC1", "O=C(O)c1ccccc1", "CCCl", "N#CC", "CS(=O)C"]
    return featurize_smiles(smiles[:n]).to_data_list()


class TestTinyGraphEncoder(EncoderContract):
    encoder_name = "molecules/tiny"

    def make_samples(self, n: int) -> list:
        return _graphs(n)


class TestTinyGIN(TestTinyGraphEncoder):
    encoder_name = "molecules/gin"
    encoder_kwargs = {"hidden_dim": 32, "n_layers": 2, "embed_dim": 256}


class TestTinyGraphTransformer(TestTinyGraphEncoder):
    encoder_name = "molecules/graph-transformer"
    encoder_kwargs = {"hidden_dim": 32, "n_layers": 2, "heads": 2}


class TestTinyFingerprint(TestTinyGraphEncoder):
    encoder_name = "molecules/tiny-fingerprint"


class TestTinyCachedText(EncoderContract):
    encoder_name = "molecules/tiny-text-cached"

    def make_samples(self, n: int) -> list[str]:
        return [f"The molecule is number {i}, an alcohol." for i in range(n)]


class TestText2MolHead(HeadContract):
    head_name = "molecules/text2mol"

    def make_head_input(self):
        from scibind.evaluate.context import EvalContext

        gen = torch.Generator().manual_seed(0)
        mol = torch.nn.functional.normalize(torch.randn(20, 8, generator=gen), dim=1)
        text = torch.nn.functional.normalize(mol + 0.5 * torch.randn(20, 8, generator=gen), dim=1)
        ones = torch.ones(20, dtype=torch.bool)
        return EvalContext(
            ids=[str(i) for i in range(20)],
            embeddings={"text": text, "molecule": mol},
            present={"text": ones, "molecule": ones},
        )
