"""Name rules, duplicates, lazy factories and requirement checks of :mod:`scibind.registry`."""

from __future__ import annotations

import sys

import pytest
import scibind
from scibind.errors import MissingDependencyError, RegistryError, UnknownNameError
from scibind.registry import (
    EncoderSpec,
    ModalitySpec,
    ReaderSpec,
    Registry,
    missing_requirements,
    resolve_factory,
)


def test_bare_names_are_prefixed_with_the_plugin():
    stored = Registry().add(EncoderSpec("enc", modality="vector", embed_dim=4, factory="m:f"), plugin="acme")
    assert stored.name == "acme/enc"
    assert stored.plugin == "acme"


def test_own_prefix_is_accepted_and_distribution_stamped():
    reg = Registry()
    stored = reg.add(EncoderSpec("acme/enc", factory="m:f"), plugin="acme", distribution="acme-dist")
    assert (stored.name, stored.distribution) == ("acme/enc", "acme-dist")


def test_another_plugins_prefix_is_rejected():
    with pytest.raises(RegistryError, match=r"must start with its own plugin name \('acme/enc'\)"):
        Registry().add(EncoderSpec("other/enc", factory="m:f"), plugin="acme")


@pytest.mark.parametrize("name", ["", "bad name", "-dash", "a/b/c d"])
def test_malformed_short_names_are_rejected(name):
    with pytest.raises(RegistryError):
        Registry().add(EncoderSpec(name, factory="m:f"), plugin="acme")


def test_modalities_are_shared_and_unprefixed():
    reg = Registry()
    assert reg.add(ModalitySpec("gene_panel"), plugin="acme").name == "gene_panel"
    with pytest.raises(RegistryError, match="registered twice: by plugin 'acme' and by 'other'"):
        reg.add(ModalitySpec("gene_panel"), plugin="other")
    with pytest.raises(RegistryError, match="lowercase"):
        reg.add(ModalitySpec("Gene Panel"), plugin="acme")


def test_duplicates_are_rejected():
    reg = Registry()
    reg.add(ReaderSpec("r", factory="m:f"), plugin="acme")
    with pytest.raises(RegistryError, match="registered twice"):
        reg.add(ReaderSpec("acme/r", factory="m:f"), plugin="acme")


def test_only_specs_can_be_registered():
    with pytest.raises(RegistryError, match="not a scibind"):
        Registry().add({"name": "x"}, plugin="acme")  # type: ignore[arg-type]


def test_invalid_requirement_and_factory_are_rejected_at_construction():
    with pytest.raises(RegistryError, match="invalid requirement"):
        EncoderSpec("e", requires=("not a requirement!!",), factory="m:f")
    with pytest.raises(RegistryError, match="'module:attr'"):
        EncoderSpec("e", factory="no-colon-here")


def test_missing_requirements_are_checked_without_importing():
    spec = EncoderSpec("e", factory="m:f", requires=("nonexistent-dist-xyz>=1", "pluggy>=0.1"))
    assert spec.missing == ["nonexistent-dist-xyz>=1"]
    assert not spec.available
    assert spec.install_hint == "pip install 'nonexistent-dist-xyz>=1'"
    assert "nonexistent_dist_xyz" not in sys.modules
    with pytest.raises(MissingDependencyError, match="pip install 'nonexistent-dist-xyz>=1'"):
        spec.check_available()


def test_version_specifiers_and_markers_are_honoured():
    assert missing_requirements(["pluggy>=999"]) == ["pluggy>=999"]
    assert missing_requirements(["nonexistent-dist-xyz; python_version < '3'"]) == []


def test_resolve_factory_errors_name_the_problem():
    with pytest.raises(MissingDependencyError, match="nonexistent_module_xyz"):
        resolve_factory("nonexistent_module_xyz.sub:f", what="encoder 'acme/e'")
    with pytest.raises(RegistryError, match="has no attribute 'nope'"):
        resolve_factory("scibind.registry:nope")
    assert resolve_factory("scibind.registry:Registry") is Registry


def test_get_accepts_unambiguous_bare_names_and_suggests_close_ones():
    reg = Registry()
    reg.add(EncoderSpec("tiny-mlp", factory="m:f"), plugin="acme")
    assert reg.get("encoders", "tiny-mlp").name == "acme/tiny-mlp"
    with pytest.raises(UnknownNameError, match="Did you mean 'acme/tiny-mlp'"):
        reg.get("encoders", "acme/tiny-mpl")


def test_unavailable_component_fails_to_build_with_the_pip_command(scibind_load_plugins):
    class Needy:
        @staticmethod
        @scibind.hookimpl
        def scibind_register_encoders(register):
            register(
                EncoderSpec(
                    "needy", factory="nonexistent_module_xyz:f", requires=("nonexistent-dist-xyz>=1",)
                )
            )

    scibind_load_plugins({"needy": Needy})
    [spec] = [s for s in scibind.list_encoders() if s.plugin == "needy"]
    assert spec.to_dict()["install_hint"] == "pip install 'nonexistent-dist-xyz>=1'"
    with pytest.raises(MissingDependencyError, match="pip install 'nonexistent-dist-xyz>=1'"):
        scibind.create_encoder("needy/needy")
