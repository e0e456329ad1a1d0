"""CLOOME: InfoLOOB against a naive reference, molecule views of profile manifests, held-out compounds."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from scibind.data.manifest import read_manifest
from scibind_cell_painting.infoloob import InfoLOOBObjective
from scibind_cell_painting.profiles import profiles_manifest

JUMP = "profiles/BR00121431_main.csv"
PLATEMAP = "metadata/JUMP-Target-2_compound_platemap.tsv"
COMPOUNDS = "metadata/JUMP-Target-2_compound_metadata.tsv"


def _naive_infoloob(x, y, scale, positives):
    """Loops in float64: tau * mean_i(-mean_{p in P_i} s x_i.y_p + log sum_{j not in P_i} exp(s x_i.y_j))."""
    n = x.shape[0]
    terms = []
    for i in range(n):
        pos = [j for j in range(n) if positives[i][j]]
        neg = [j for j in range(n) if not positives[i][j]]
        if not neg:
            continue
        positive = sum(scale * torch.dot(x[i], y[p]) for p in pos) / len(pos)
        negative = torch.log(sum(torch.exp(scale * torch.dot(x[i], y[j])) for j in neg))
        terms.append(negative - positive)
    return sum(terms) / len(terms) / scale


def _naive_hopfield(state, stored, beta):
    out = []
    for s in state:
        w = torch.stack([torch.exp(beta * torch.dot(s, m)) for m in stored])
        r = sum(wi * m for wi, m in zip(w / w.sum(), stored, strict=True))
        out.append(r / torch.sqrt((r * r).sum()))
    return torch.stack(out)


def _naive_cloome(za, zb, scale, positives, beta):
    za = za / za.norm(dim=1, keepdim=True)
    zb = zb / zb.norm(dim=1, keepdim=True)
    if beta is None:
        return (_naive_infoloob(za, zb, scale, positives) + _naive_infoloob(zb, za, scale, positives)) / 2
    u_a, u_b = _naive_hopfield(za, za, beta), _naive_hopfield(zb, za, beta)
    v_b, v_a = _naive_hopfield(zb, zb, beta), _naive_hopfield(za, zb, beta)
    return (_naive_infoloob(u_a, u_b, scale, positives) + _naive_infoloob(v_b, v_a, scale, positives)) / 2


@pytest.mark.parametrize("beta", [None, 14.3, 3.0])
@pytest.mark.parametrize("grouped", [False, True])
def test_infoloob_matches_naive_float64_reference(beta, grouped):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    groups = torch.tensor([0, 0, 1, 2, 2, 2, 3]) if grouped else None
    objective = InfoLOOBObjective(
        temperature=0.2, hopfield_beta=beta, positive_target="compound" if grouped else None
    ).double()
    targets = {"compound": groups} if grouped else {}
    out = objective({"profile": a, "molecule": b}, **targets)
    loss = out.loss if hasattr(out, "loss") else out[0]
    grads = torch.autograd.grad(loss, [a, b])
    positives = (
        (groups[:, None] == groups[None, :]).tolist() if grouped else torch.eye(7, dtype=torch.bool).tolist()
    )
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    scale = objective.scale().detach()  # 1/0.2 through a float32 log: not exactly 5
    reference = _naive_cloome(a2, b2, scale, positives, beta)
    ref_grads = torch.autograd.grad(reference, [a2, b2])
    assert loss.item() == pytest.approx(reference.item(), rel=1e-9, abs=1e-12)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)


def test_infoloob_registered_and_rejects_bad_beta(scibind_registry):
    from scibind import create_objective
    from scibind.errors import ConfigError

    objective = create_objective("cell_painting/infoloob", positive_target="compound")
    assert isinstance(objective, InfoLOOBObjective) and objective.hopfield_beta == pytest.approx(14.3)
    assert not objective.logit_scale.requires_grad  # CLOOME keeps 1/tau fixed
    with pytest.raises(ConfigError, match="hopfield_beta"):
        InfoLOOBObjective(hopfield_beta=0.0)


def test_jump_target2_profiles_get_a_molecule_view_read_by_the_molecules_plugin(shared_data_dir, tmp_path):
    from scibind import create_encoder, create_reader
    from scibind_molecules.collate import collate_graphs

    folder = shared_data_dir / "cellpainting"
    path = profiles_manifest(
        folder / JUMP,
        tmp_path,
        platemap=folder / PLATEMAP,
        compounds=folder / COMPOUNDS,
        smiles="Metadata_smiles",
        labels={"compound": "Metadata_broad_sample", "inchikey": "Metadata_InChIKey"},
        eval_fraction=0.5,
    )
    frame = read_manifest(path).frame.set_index("id")
    assert frame.loc["BR00121431_A01", "molecule"] == "CCCCCCCCO"
    assert frame.loc["BR00121431_A02", "text"] == "quinine"
    assert frame.loc["BR00121431_A02", "inchikey"] == "LOUPRKONTZGTKE-UHFFFAOYSA-N"
    assert len(frame.loc["BR00121431_A02", "profile"]) > 5000
    reader = create_reader("molecules/molecule")
    samples = [reader.read(v, record_id=i) for i, v in frame["molecule"].items()]
    assert {s.modality for s in samples} == {"molecule_graph"}
    encoder = create_encoder("molecules/tiny-fingerprint")
    with torch.no_grad():
        z = encoder(collate_graphs([s.data for s in samples]))
    assert z.shape == (2, 32) and torch.isfinite(z).all()


def test_a_whole_jump_target2_plate_gets_every_structure_it_can(shared_data_dir, tmp_path):
    """Real plate map and compound table, all 384 wells (the shared profiles hold two; features made up)."""
    from rdkit import Chem, RDLogger
    from scibind_cell_painting.naming import well_name

    folder = shared_data_dir / "cellpainting"
    wells = [well_name(r, c) for r in range(1, 17) for c in range(1, 25)]
    rng = np.random.default_rng(0)
    lines = ["Metadata_Plate,Metadata_Well,f1,f2,f3"]
    lines += [f"BR00121431,{w},{','.join(f'{v:.3f}' for v in rng.normal(size=3))}" for w in wells]
    (tmp_path / "plate.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = profiles_manifest(
        tmp_path / "plate.csv",
        tmp_path / "out",
        platemap=folder / PLATEMAP,
        compounds=folder / COMPOUNDS,
        smiles="Metadata_smiles",
        labels={
            "compound": "Metadata_broad_sample",
            "inchikey": "Metadata_InChIKey",
            "well": "Metadata_Well",
        },
    )
    frame = read_manifest(path).frame.set_index("well")
    controls = frame["text"] == "DMSO control"
    assert controls.sum() == 64 and frame.loc[controls, "molecule"].isna().all()
    # Every other well (260 treated, 60 positive controls: compounds too) carries its compound's structure.
    assert (
        frame.loc[~controls, "molecule"].notna().all() and frame.loc[~controls, "compound"].nunique() == 306
    )
    assert frame.loc["A01", "molecule"] == "CCCCCCCCO" and frame.loc["A01", "text"] == "1-octanol"
    RDLogger.DisableLog("rdApp.*")
    mols = {w: Chem.MolFromSmiles(s) for w, s in frame.loc[~controls, "molecule"].items()}
    unparsed = sorted(w for w, m in mols.items() if m is None)
    # Two table SMILES write phosphate as [PH](=O)(=O)O, which RDKit rejects (briciclib, fludarabine
    # phosphate); the molecules reader will refuse these two wells. Every other structure is its InChIKey.
    assert unparsed == ["D02", "K05"]
    keys = {w: Chem.MolToInchiKey(m) for w, m in mols.items() if m is not None}
    assert all(keys[w] == frame.loc[w, "inchikey"] for w in keys)


def test_lincs_controls_have_no_molecule_and_bad_smiles_column_is_named(shared_data_dir, tmp_path):
    from scibind.errors import ConfigError

    lincs = shared_data_dir / "cellpainting/profiles/SQ00015054_normalized_feature_select.csv.gz"
    with pytest.raises(ConfigError, match="no SMILES column 'Metadata_smiles'"):
        profiles_manifest(lincs, tmp_path, smiles="Metadata_smiles")
    # LINCS carries InChIKey14 only; any metadata column works as the molecule value, controls stay empty.
    frame = read_manifest(profiles_manifest(lincs, tmp_path, smiles="Metadata_InChIKey14")).frame
    controls = frame["text"].str.endswith("control")
    assert controls.sum() == 24 and frame.loc[controls, "molecule"].isna().all()
    assert frame.loc[~controls, "molecule"].notna().mean() > 0.9


def test_synthetic_cloome_holds_out_whole_compounds_with_valid_smiles(tmp_path):
    from rdkit import Chem
    from scibind_cell_painting.cloome import make_synthetic_cloome

    kwargs = {"n_scaffolds": 3, "n_substituents": 4, "wells_per_compound": 2, "n_features": 8}
    a = make_synthetic_cloome(tmp_path / "a", **kwargs)
    b = make_synthetic_cloome(tmp_path / "b", **kwargs)
    assert (tmp_path / "a/profiles.csv").read_bytes() == (tmp_path / "b/profiles.csv").read_bytes()
    frame = read_manifest(a).frame
    assert len(frame) == 3 * 4 * 2 * 2 and frame["compound"].nunique() == 12
    train, held = (set(frame.loc[frame.split == s, "compound"]) for s in ("train", "eval"))
    assert held and not train & held
    assert all(Chem.MolFromSmiles(s) is not None for s in frame["molecule"].unique())
    assert frame.groupby("compound")["molecule"].nunique().eq(1).all()
    assert b.is_file()


def test_plugin_works_without_molecules(scibind_registry, monkeypatch):
    """No scibind_molecules import at load; without the dist the recipe lists as unavailable with a hint."""
    code = (
        "import sys, scibind_cell_painting.plugin, scibind_cell_painting.cloome, "
        "scibind_cell_painting.infoloob, scibind_cell_painting.profiles; "
        "print('scibind_molecules' in sys.modules)"
    )
    assert subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip() == ("False")
    from scibind import get_spec

    spec = get_spec("recipes", "cell_painting/cloome-profiles")
    assert spec.requires == ("scibind-molecules>=0.1",) and spec.available
    real_version = importlib.metadata.version

    def version(name):
        if name == "scibind-molecules":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert not spec.available and spec.install_hint == "pip install 'scibind-molecules>=0.1'"
    assert get_spec("recipes", "cell_painting/profiles-text-clip").available


@pytest.mark.slow
def test_cloome_recipe_retrieves_held_out_compounds_above_chance(tmp_path, scibind_registry):
    from scibind.train.recipe import load_recipe
    from scibind.train.trainer import train

    recipe = load_recipe(
        "cell_painting/cloome-profiles",
        [
            "train.max_steps=80",
            "train.batch_size=64",
            "data.dataset_kwargs.n_substituents=8",
            "data.dataset_kwargs.n_plates=1",
        ],
    )
    result = train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics == pytest.approx(result.metrics)
    for key in (
        "map/molecule->profile/compound",
        "map/profile->molecule/compound",
        "map/molecule->profile/moa",
    ):
        assert metrics[f"{key}/mAP"] > 2.0 * metrics[f"{key}/mAP_chance"], key
    assert np.isfinite(metrics["map/profile/compound/mAP"])


def test_synthetic_plates_give_compounds_a_molecule_view_and_controls_none(tmp_path, scibind_registry):
    from rdkit import Chem
    from scibind import get_spec
    from scibind_cell_painting.synthetic import make_synthetic_plates

    kwargs = {"n_plates": 1, "n_compounds": 3, "wells_per_compound": 2, "eval_wells_per_compound": 1}
    frame = read_manifest(make_synthetic_plates(tmp_path, **kwargs)).frame
    dmso = frame["perturbation"] == "DMSO"
    assert dmso.any() and frame.loc[dmso, "molecule"].isna().all()
    assert frame.loc[~dmso].groupby("perturbation")["molecule"].nunique().eq(1).all()
    assert frame.loc[~dmso, "molecule"].nunique() == 3
    assert all(Chem.MolFromSmiles(s) is not None for s in frame.loc[~dmso, "molecule"].unique())
    spec = get_spec("recipes", "cell_painting/cloome-images")
    assert spec.requires == ("scibind-molecules>=0.1",) and not spec.demo


def test_held_out_image_compounds_are_unseen_combinations_of_seen_parts(tmp_path):
    from scibind_cell_painting.cloome import SUBSTITUENTS
    from scibind_cell_painting.synthetic import _structure_effects, make_synthetic_plates

    kwargs = {"n_plates": 1, "n_compounds": 15, "wells_per_compound": 2, "eval_wells_per_compound": 1}
    manifest = make_synthetic_plates(
        tmp_path, **kwargs, sites_per_well=1, effects="structure", heldout_compounds=4
    )
    frame = read_manifest(manifest).frame
    treated = frame[frame["perturbation"] != "DMSO"]
    held = treated[treated["heldout"] == "yes"]
    trained = treated[treated["split"] == "train"]
    assert held["perturbation"].nunique() == 4 and (held["split"] == "eval").all()
    assert set(treated.loc[treated["split"] == "eval", "perturbation"]) == set(held["perturbation"])
    assert not set(held["perturbation"]) & set(trained["perturbation"])
    assert set(frame.loc[frame["perturbation"] == "DMSO", "split"]) == {"train", "eval"}

    def chain(smiles: str) -> str:
        return max((s for s in SUBSTITUENTS if smiles.startswith(s)), key=len)

    for smiles, moa in held[["molecule", "moa"]].drop_duplicates().itertuples(index=False):
        assert moa in set(trained["moa"]), moa  # the scaffold (MOA) was seen in training ...
        assert chain(smiles) in {chain(s) for s in trained["molecule"]}, smiles  # ... and the side chain
    # Morphology is additive in the parts: scaffold 0 + chain 0 and scaffold 1 + chain 1 (compounds 1, 7) add
    # up to scaffold 1 + chain 0 and scaffold 0 + chain 1 (compounds 2, 6).
    effects = _structure_effects(np.random.default_rng(0), 15)
    np.testing.assert_allclose(effects[1] + effects[7], effects[2] + effects[6])
    assert not np.allclose(effects[1], effects[6]) and not np.allclose(effects[1], effects[2])


@pytest.mark.slow
def test_cloome_images_recipe_retrieves_fields_from_molecules_above_chance(tmp_path, scibind_registry):
    from scibind.train.recipe import load_recipe
    from scibind.train.trainer import train

    recipe = load_recipe("cell_painting/cloome-images", ["train.max_steps=160"])
    result = train(recipe, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics == pytest.approx(result.metrics)
    frame = read_manifest(tmp_path / "run" / "data" / "manifest.csv").frame
    treated = frame[frame["perturbation"] != "DMSO"]
    train_compounds = set(treated.loc[treated["split"] == "train", "perturbation"])
    eval_compounds = set(treated.loc[treated["split"] == "eval", "perturbation"])
    assert len(eval_compounds) == 6 and not eval_compounds & train_compounds  # whole compounds held out
    assert set(treated.loc[treated["heldout"] == "yes", "perturbation"]) == eval_compounds
    for key in ("map/molecule->cells/perturbation", "map/cells->molecule/perturbation"):
        assert metrics[f"{key}/n_labels"] == 6, key
        assert metrics[f"{key}/mAP"] > 1.8 * metrics[f"{key}/mAP_chance"], key
    assert np.isfinite(metrics["map/cells/perturbation/mAP"])
