"""What molecules/orma reads: interleaved atom/motif tokens, cached text tokens; ChEBI files end to end."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scibind.errors import ConfigError, DataError
from scibind_molecules.graph_encoders import tiny_graph, tiny_motif
from scibind_molecules.motifs import featurize_hierarchical, motif_batch
from scibind_molecules.orma import split_atoms_motifs
from scibind_molecules.text import CachedTokenTextEncoder, cached_text
from scibind_testkit import EncoderContract


def test_interleaved_tokens_are_the_atom_and_motif_tokens(chebi_rows):
    batch = featurize_hierarchical([row[1] for row in chebi_rows[:5]])
    torch.manual_seed(0)
    encoder = tiny_motif(tokens="atoms+motifs").eval()
    with torch.no_grad():
        both = encoder.forward_tokens(batch)
        mask = encoder.token_mask(batch)
        motifs, motif_mask = encoder.motif_tokens(batch)
        pooled, same = encoder.forward_with_tokens(batch)  # one pass of the atom and motif layers
        torch.testing.assert_close(pooled, encoder(batch))
        torch.testing.assert_close(same, both)
        encoder.tokens = "atoms"
        atoms = encoder.forward_tokens(batch)
        atom_mask = encoder.token_mask(batch)
    (a, am), (m, mm) = split_atoms_motifs(both, mask)
    atom_counts = torch.bincount(batch.batch).tolist()
    motif_counts = torch.bincount(motif_batch(batch), minlength=5).tolist()
    assert am.sum(1).tolist() == atom_counts and mm.sum(1).tolist() == motif_counts
    assert both.shape[1] == 2 * max(max(atom_counts), max(motif_counts))
    torch.testing.assert_close(a[:, : atoms.shape[1]][am[:, : atoms.shape[1]]], atoms[atom_mask])
    torch.testing.assert_close(m[mm], motifs[motif_mask])
    assert (both[~mask] == 0).all() and mask.device == batch.batch.device
    with pytest.raises(ConfigError, match="atoms\\+motifs"):
        tiny_graph(tokens="atoms+motifs")


def test_cached_tokens_equal_the_base_encoder_and_survive_on_disk(tmp_path):
    texts = ["The molecule is an alcohol.", "The molecule is a long-chain fatty acid with 18 carbons.", "x"]
    torch.manual_seed(0)
    first = cached_text("core/tiny-text", {"embed_dim": 16}, tokens=True, cache_dir=str(tmp_path))
    assert isinstance(first, CachedTokenTextEncoder)
    base = first._base[0]
    with torch.no_grad():
        expected = base.forward_tokens(texts)
        expected_mask = base.token_mask(texts)
    tokens, mask = first.forward_tokens(texts), first.token_mask(texts)
    assert torch.equal(mask, expected_mask)
    torch.testing.assert_close(tokens, expected, atol=2e-3, rtol=2e-3)  # stored as float16
    pooled = first(texts)
    weights = expected_mask[..., None].float()
    torch.testing.assert_close(pooled, (expected * weights).sum(1) / weights.sum(1))
    shards = list(tmp_path.rglob("*.safetensors"))
    assert len(shards) == 1
    # Another process-like instance, with different random weights, reads the stored values back.
    torch.manual_seed(1)
    second = cached_text("core/tiny-text", {"embed_dim": 16}, tokens=True, cache_dir=str(tmp_path))
    assert torch.equal(second(texts), pooled) and torch.equal(second.forward_tokens(texts), tokens)
    assert len(list(tmp_path.rglob("*.safetensors"))) == 1  # nothing new embedded
    # Without tokens the encoder has no forward_tokens (token objectives then use its pooled output).
    plain = cached_text("core/tiny-text", {"embed_dim": 16})
    assert not callable(getattr(plain, "forward_tokens", None))
    with pytest.raises(DataError, match="forward_tokens"):
        cached_text("molecules/tiny-text-cached", tokens=True)  # a text encoder without tokens


class TestTinyCachedTextTokens(EncoderContract):
    encoder_name = "molecules/tiny-text-cached"
    encoder_kwargs = {"tokens": True}

    def make_samples(self, n: int) -> list[str]:
        return [f"The molecule is number {i}, an alcohol." for i in range(n)]


def _chebi_slice(source: Path, out: Path, start: int, n: int) -> Path:
    with open(source, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    lines = ["\t".join(r) for r in [rows[0], *rows[1 + start : 1 + start + n]]]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def test_chebi20_recipe_trains_from_data_train_and_eval_files(tmp_path, chebi_file):
    """`scibind train molecules/chebi20 --set data.train=FILE --set data.eval=FILE` on ChEBI-20 slices."""
    train = _chebi_slice(chebi_file, tmp_path / "train.txt", 0, 160)
    evaluation = _chebi_slice(chebi_file, tmp_path / "test.txt", 160, 60)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "scibind", "train", "molecules/chebi20", "--run-dir", str(run)]
    sets = [
        f"data.train={train}",
        f"data.eval={evaluation}",
        "train.max_steps=4",
        "train.batch_size=32",
        "towers.text.encoder=molecules/tiny-text-cached",
        "towers.text.encoder_kwargs={embed_dim: 32}",
    ]
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["text->molecule/n"] == 60
    assert {"text->molecule/MRR", "text->molecule/R@1", "text->molecule/R@10", "molecule->text/MRR"} <= set(
        metrics
    )
    info = json.loads(next(run.rglob("dataset_info.json")).read_text())
    assert json.dumps(info).count("train.txt") >= 1 and json.dumps(info).count("test.txt") >= 1


def test_orma_recipe_trains_with_motif_and_text_tokens(tmp_path, chebi_file):
    """molecules/chebi20-orma end to end with the tiny towers: tokens reach the objective, metrics land."""
    train = _chebi_slice(chebi_file, tmp_path / "train.txt", 0, 96)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "scibind", "train", "molecules/chebi20-orma", "--run-dir", str(run)]
    sets = [
        f"data.train={train}",
        "train.max_steps=3",
        "train.batch_size=16",
        "embed_dim=32",
        "towers.molecule.encoder=molecules/tiny-motif",
        "towers.molecule.encoder_kwargs={tokens: atoms+motifs}",
        "towers.text.encoder=molecules/tiny-text-cached",
        "towers.text.encoder_kwargs={embed_dim: 32, tokens: true}",
    ]
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["text->molecule/n"] > 10 and "text->molecule/MRR" in metrics
    logged = (run / "train_log.jsonl").read_text() if (run / "train_log.jsonl").exists() else ""
    logged += "".join(p.read_text() for p in run.rglob("*.jsonl") if p.name != "quarantine.jsonl")
    assert "token_atom" in logged and "motif" in logged
