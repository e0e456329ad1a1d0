"""Registered components: ``*Spec`` records, name rules, lazy factories and dependency checks.

A plugin describes what it contributes with the spec classes below and hands them to the ``register``
callback of a ``scibind_register_*`` hook. Nothing heavy is imported at registration: factories are
``"module:attr"`` strings resolved only when a component is built, and ``requires`` (PEP 508 strings) are
checked against installed distribution metadata without importing anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from packaging.requirements import InvalidRequirement, Requirement

from scibind.errors import MissingDependencyError, RegistryError, UnknownNameError

__all__ = [
    "KINDS",
    "ComponentSpec",
    "DatasetSpec",
    "EncoderSpec",
    "HeadSpec",
    "ModalitySpec",
    "ObjectiveSpec",
    "ReaderSpec",
    "RecipeSpec",
    "Registry",
    "missing_requirements",
    "resolve_factory",
]

PLUGIN_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
SHORT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
SINGULAR = {
    "modalities": "modality",
    "readers": "reader",
    "encoders": "encoder",
    "objectives": "objective",
    "heads": "head",
    "recipes": "recipe",
    "datasets": "dataset",
}


@dataclass(frozen=True)
class ComponentSpec:
    """Fields every registered component has.

    Attributes:
        name: ``"<plugin>/<name>"``. A plugin may register a bare ``"<name>"``; the core prefixes it.
        description: One line shown by ``scibind list``.
        requires: PEP 508 requirement strings the component needs at build time (``"rdkit>=2023.9"``).
        plugin: The plugin that registered it (stamped by the core).
        distribution: The distribution that ships that plugin (stamped by the core).
    """

    kind: ClassVar[str] = ""
    name: str
    description: str = ""
    requires: tuple[str, ...] = ()
    plugin: str = ""
    distribution: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "requires", tuple(self.requires))
        for req in self.requires:
            try:
                Requirement(req)
            except InvalidRequirement as exc:
                raise RegistryError(
                    f"{SINGULAR[self.kind]} {self.name!r}: invalid requirement {req!r}: {exc}"
                ) from exc
        for attr in ("factory", "collate"):
            value = getattr(self, attr, None)
            if value is not None and not (callable(value) or FACTORY_RE.match(str(value))):
                raise RegistryError(
                    f"{SINGULAR[self.kind]} {self.name!r}: {attr} must be a callable or a "
                    f"'module:attr' string, got {value!r}"
                )

    @property
    def missing(self) -> list[str]:
        """Requirements of this component that the environment does not satisfy."""
        return missing_requirements(self.requires)

    @property
    def available(self) -> bool:
        """Whether every requirement is installed."""
        return not self.missing

    @property
    def install_hint(self) -> str:
        """The pip command that makes this component available ("" when it already is)."""
        missing = self.missing
        return "pip install " + " ".join(f"'{r}'" for r in missing) if missing else ""

    def check_available(self) -> None:
        """Raise :class:`MissingDependencyError` naming the pip command when requirements are missing."""
        if self.missing:
            raise MissingDependencyError(
                f"{SINGULAR[self.kind]} {self.name!r} (plugin {self.plugin or '?'}) needs "
                f"{', '.join(self.missing)}; install it with: {self.install_hint}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view, used by ``scibind list --json``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if callable(value):
                value = f"{value.__module__}:{value.__qualname__}"
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["available"] = self.available
        out["install_hint"] = self.install_hint
        return out


@dataclass(frozen=True)
class ModalitySpec(ComponentSpec):
    """A named kind of data.

    Modality names are a vocabulary shared by every plugin (``text``, ``vector``, ``wsi_tile``), so they are
    not prefixed with the plugin name; a second registration of the same name is rejected.

    Attributes:
        sample_type: What one sample's ``data`` holds, e.g. ``"Tensor[C,H,W] float32"``.
        collate: ``"module:attr"`` or callable turning a list of sample ``data`` into one batch object.
    """

    kind: ClassVar[str] = "modalities"
    sample_type: str = ""
    collate: str | Callable[..., Any] = "scibind.data.collate:default_collate"


@dataclass(frozen=True)
class ReaderSpec(ComponentSpec):
    """A reader: file, folder or manifest value -> samples of one modality.

    Attributes:
        modality: The modality it produces.
        factory: ``"module:attr"`` building the reader (a :class:`scibind.data.readers.Reader`).
        patterns: Glob patterns on file names (``"*.svs"``) or ``"dir:<glob>"`` for folder layouts
            (``"dir:spatial/tissue_positions*.csv"``). Values inside manifests are read by modality, so a
            reader of inline values may list no pattern.
        priority: Higher wins when several readers claim one path (before ``scibind_choose_reader``).
        option_groups: Names of ``scibind prepare --set <group>.<option>=value`` groups whose options this
            reader takes as keyword arguments (``("tiling",)`` lets ``--set tiling.mpp=0.5`` reach it).
    """

    kind: ClassVar[str] = "readers"
    modality: str = ""
    factory: str | Callable[..., Any] = ""
    patterns: tuple[str, ...] = ()
    priority: int = 0
    option_groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", tuple(self.patterns))
        object.__setattr__(self, "option_groups", tuple(self.option_groups))
        super().__post_init__()


@dataclass(frozen=True)
class EncoderSpec(ComponentSpec):
    """An encoder family member.

    Attributes:
        modality: The modality it encodes.
        embed_dim: Width of its output embedding ``[B, embed_dim]``.
        factory: ``"module:attr"`` building an :class:`torch.nn.Module` with ``embed_dim`` and ``modality``.
        transforms: Optional ``"module:attr"`` building the sample transform the encoder expects.
        pretrained: Tags of local weights it can load (``"local-safetensors"``, ``"hf-folder"``).
    """

    kind: ClassVar[str] = "encoders"
    modality: str = ""
    embed_dim: int = 0
    factory: str | Callable[..., Any] = ""
    transforms: str | None = None
    pretrained: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pretrained", tuple(self.pretrained))
        super().__post_init__()


@dataclass(frozen=True)
class ObjectiveSpec(ComponentSpec):
    """A training objective.

    Attributes:
        factory: ``"module:attr"`` building an ``nn.Module`` ``forward(embeddings, present=None, **targets)``.
        arity: ``"pairwise"`` (applied to configured modality pairs) or ``"joint"`` (all modalities at once).
    """

    kind: ClassVar[str] = "objectives"
    factory: str | Callable[..., Any] = ""
    arity: str = "pairwise"


@dataclass(frozen=True)
class HeadSpec(ComponentSpec):
    """A downstream head or evaluation task that consumes embeddings only.

    Attributes:
        factory: ``"module:attr"`` building the head.
        task: The evaluation task it implements (``"retrieval"``, ``"linear_probe"``, ...).
    """

    kind: ClassVar[str] = "heads"
    factory: str | Callable[..., Any] = ""
    task: str = ""


@dataclass(frozen=True)
class RecipeSpec(ComponentSpec):
    """A model config / training recipe composing towers and an objective.

    Attributes:
        source: ``"package:relative/path.yaml"`` (read with importlib.resources) holding the recipe.
        demo: Whether ``scibind demo`` runs this recipe.
    """

    kind: ClassVar[str] = "recipes"
    source: str = ""
    demo: bool = False


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """An example or benchmark dataset generator.

    Attributes:
        factory: ``"module:attr"`` called as ``factory(out_dir, **kwargs)``; writes real files and a
            manifest into ``out_dir`` and returns the manifest path.
        accepts_files: The factory converts user files rather than generating data: it takes ``train=`` and
            ``eval=`` paths (a recipe's ``data.train`` / ``data.eval``, e.g. ChEBI-20 ``.txt`` tables) and
            writes a manifest whose ``split`` column selects the two splits.
    """

    kind: ClassVar[str] = "datasets"
    factory: str | Callable[..., Any] = ""
    accepts_files: bool = False


SPEC_TYPES: dict[str, type[ComponentSpec]] = {
    cls.kind: cls
    for cls in (ModalitySpec, ReaderSpec, EncoderSpec, ObjectiveSpec, HeadSpec, RecipeSpec, DatasetSpec)
}
KINDS: tuple[str, ...] = tuple(SPEC_TYPES)


def missing_requirements(requires: tuple[str, ...] | list[str]) -> list[str]:
    """Return the requirements not satisfied by installed distributions (nothing is imported).

    Args:
        requires: PEP 508 strings.

    Returns:
        The subset that is missing or installed at a version outside the specifier.
    """
    missing = []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def resolve_factory(ref: str | Callable[..., Any], *, what: str = "factory") -> Any:
    """Import the object named by ``"module:attr"`` (or return ``ref`` when it is already callable).

    Args:
        ref: ``"package.module:attr.sub"`` or a callable.
        what: Used in error messages (e.g. ``"encoder 'core/mlp'"``).

    Raises:
        MissingDependencyError: The module (or one it imports) is not installed.
        RegistryError: The reference is malformed or the attribute does not exist.
    """
    if callable(ref):
        return ref
    if not FACTORY_RE.match(ref):
        raise RegistryError(f"{what}: {ref!r} is not a 'module:attr' reference")
    module_name, attr = ref.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            f"{what}: importing {module_name!r} failed because module {exc.name!r} is not installed; "
            f"install the package that provides it (pip install {exc.name})"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise RegistryError(f"{what}: {module_name!r} has no attribute {attr!r}") from exc
    return obj


@dataclass
class Registry:
    """Every registered component, by kind and full name."""

    entries: dict[str, dict[str, ComponentSpec]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def add(self, spec: ComponentSpec, *, plugin: str, distribution: str = "") -> ComponentSpec:
        """Validate, name-stamp and store ``spec`` on behalf of ``plugin``.

        Args:
            spec: The spec a plugin handed to ``register``.
            plugin: The registering plugin's name.
            distribution: The distribution that ships the plugin.

        Returns:
            The stored spec, with ``plugin``, ``distribution`` and the full name filled in.

        Raises:
            RegistryError: Not a spec, malformed name, prefix of another plugin, or a duplicate.
        """
        if not isinstance(spec, ComponentSpec) or not spec.kind:
            raise RegistryError(f"plugin {plugin!r} registered {spec!r}, which is not a scibind *Spec")
        name = qualify_name(spec, plugin)
        stored = dataclasses.replace(spec, name=name, plugin=plugin, distribution=distribution)
        table = self.entries[spec.kind]
        if name in table:
            other = table[name]
            raise RegistryError(
                f"{SINGULAR[spec.kind]} {name!r} is registered twice: by plugin {other.plugin!r} "
                f"and by {plugin!r}; rename one of them"
            )
        table[name] = stored
        return stored

    def get(self, kind: str, name: str) -> Any:
        """Return the spec registered as ``name`` (a bare name is accepted when unambiguous).

        Raises:
            UnknownNameError: Nothing of that kind has that name; the message lists close matches.
        """
        table = self.entries[kind]
        if name in table:
            return table[name]
        suffix_matches = [full for full in table if full.split("/", 1)[-1] == name]
        if len(suffix_matches) == 1:
            return table[suffix_matches[0]]
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5) or suffix_matches
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"no {SINGULAR[kind]} named {name!r}.{hint} `scibind list {kind}` shows every registered "
            f"{SINGULAR[kind]}; `scibind plugins` shows plugins that failed to load."
        )

    def list(self, kind: str) -> list[Any]:
        """All specs of one kind, sorted by name."""
        return [self.entries[kind][n] for n in sorted(self.entries[kind])]

    def __iter__(self) -> Iterator[ComponentSpec]:
        for kind in KINDS:
            yield from self.list(kind)


def qualify_name(spec: ComponentSpec, plugin: str) -> str:
    """Return the full registered name of ``spec`` for ``plugin`` (modalities stay unprefixed)."""
    name = spec.name
    if spec.kind == "modalities":
        if not PLUGIN_NAME_RE.match(name):
            raise RegistryError(
                f"plugin {plugin!r}: modality name {name!r} must be lowercase letters, digits, '_' or '-'"
            )
        return name
    prefix, _, short = name.rpartition("/")
    if prefix and prefix != plugin:
        raise RegistryError(
            f"plugin {plugin!r} registered {SINGULAR[spec.kind]} {name!r}; names must start with its own "
            f"plugin name ('{plugin}/{short}')"
        )
    if not SHORT_NAME_RE.match(short):
        raise RegistryError(
            f"plugin {plugin!r}: {SINGULAR[spec.kind]} name {short!r} may only use letters, digits "
            "and '_', '.', '+', '-'"
        )
    return f"{plugin}/{short}"
