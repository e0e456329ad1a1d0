"""Paired datasets: manifest records -> per-view samples, presence masks and integer targets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from scibind.data.collate import collate_for_modality
from scibind.data.manifest import Manifest, is_missing
from scibind.data.readers import Reader
from scibind.data.types import Batch, ModalityBatch
from scibind.errors import ConfigError, DataError, ReadError, ScibindError, ShapeError

__all__ = ["PairedDataset", "ViewConfig", "default_reader", "label_text"]

Item = dict[str, Any]


@dataclass(frozen=True)
class ViewConfig:
    """How one view is read.

    Attributes:
        name: The view (manifest column or ``<view>.<field>`` group; also the tower name).
        modality: The modality its samples belong to (selects the collate).
        reader: The reader turning a manifest value into a :class:`scibind.data.types.Sample`.
    """

    name: str
    modality: str
    reader: Reader


def default_reader(modality: str, **kwargs: Any) -> Reader:
    """Build the highest-priority registered (and installed) reader of ``modality``.

    Args:
        modality: The modality to read.
        **kwargs: Options of that reader (a recipe's ``towers.<view>.reader_kwargs``).

    Raises:
        ConfigError: No installed reader produces that modality.
    """
    from scibind.api import create_reader, list_readers

    specs = sorted((s for s in list_readers() if s.modality == modality), key=lambda s: (-s.priority, s.name))
    usable = [s for s in specs if s.available]
    if not usable:
        hint = f"; install what they need: {specs[0].install_hint}" if specs else ""
        raise ConfigError(
            f"no installed reader produces modality {modality!r}{hint}. `scibind list readers` shows every "
            "reader; pass ViewConfig(name, modality, reader) to choose one explicitly"
        )
    return create_reader(usable[0].name, **kwargs)


def label_text(value: Any) -> str | None:
    """A label cell as text (``None`` when missing); integral floats drop ``.0`` (``3.0`` -> ``"3"``)."""
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _view_configs(
    views: Mapping[str, ViewConfig] | Mapping[str, str] | Sequence[str],
) -> dict[str, ViewConfig]:
    if isinstance(views, str):
        raise ConfigError(f"views must be a list or mapping of view names, got the string {views!r}")
    pairs = views.items() if isinstance(views, Mapping) else ((v, v) for v in views)
    out: dict[str, ViewConfig] = {}
    for name, config in pairs:
        if isinstance(config, ViewConfig):
            if config.name != name:
                raise ConfigError(
                    f"view {name!r} is configured with ViewConfig(name={config.name!r}); use one name"
                )
            out[name] = config
        elif isinstance(config, str):
            out[name] = ViewConfig(name, config, default_reader(config))
        else:
            raise ConfigError(
                f"view {name!r}: expected a modality name or ViewConfig, got {type(config).__name__}"
            )
    if not out:
        raise ConfigError("a PairedDataset needs at least one view")
    return out


class PairedDataset(Dataset[Item]):
    """Records of a manifest, each with any subset of its views present.

    Item ``i`` is ``{"id": str, "views": {view: data or None}, "targets": {name: int}}``. Targets are the
    integer codes of the label columns and of ``group`` (when the manifest has one) in vocabularies of the
    sorted distinct values of the whole manifest file (``-1`` = missing or not in a given ``vocab``).

    Args:
        manifest: The records (e.g. ``read_manifest(path).select("train")``).
        views: View -> :class:`ViewConfig`, or view -> modality name (the reader is the highest-priority
            registered reader of that modality), or a list of views named like their modality.
        labels: Label columns to expose as targets.
        transforms: View -> callable applied to the sample data after reading.
        vocab: Vocabularies to use instead of building them (pass the training set's ``vocab`` to an
            evaluation set read from another file, so codes agree).

    Raises:
        DataError: A view or label column is not in the manifest.
        ConfigError: A transform names an unknown view, or a modality has no reader.
    """

    def __init__(
        self,
        manifest: Manifest,
        views: Mapping[str, ViewConfig] | Mapping[str, str] | Sequence[str],
        labels: Sequence[str] = (),
        transforms: Mapping[str, Callable[[Any], Any]] | None = None,
        vocab: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.views = _view_configs(views)
        self.manifest = manifest.with_views(list(self.views))
        self.transforms = dict(transforms or {})
        unknown = sorted(set(self.transforms) - set(self.views))
        if unknown:
            raise ConfigError(
                f"transforms given for unknown view(s) {unknown}; views are {sorted(self.views)}"
            )
        columns = list(self.manifest.frame.columns)
        missing = [c for c in labels if c not in columns]
        if missing:
            raise DataError(
                f"{self.manifest.name}: no label column {', '.join(repr(c) for c in missing)}; "
                f"label columns are {list(self.manifest.label_columns)}"
            )
        clash = [c for c in labels if c in self.views or c in ("id", "split")]
        if clash:
            raise ConfigError(f"{clash} cannot be labels: they are views or reserved columns")
        self.labels = tuple(labels)
        self.target_names = self.labels + (("group",) if "group" in columns and "group" not in labels else ())
        self.ids: list[str] = self.manifest.ids
        self._values = {name: self.manifest.view_values(name) for name in self.views}
        self._label_text = {
            name: [label_text(v) for v in self.manifest.frame[name].tolist()] for name in self.target_names
        }
        self.vocab: dict[str, list[str]] = {}
        for name in self.target_names:
            if vocab is not None and name in vocab:
                self.vocab[name] = list(vocab[name])
            else:
                whole = self.manifest.source_frame[name].tolist()
                self.vocab[name] = sorted({t for t in map(label_text, whole) if t is not None})
        self._codes: dict[str, list[int]] = {}
        for name in self.target_names:
            index = {value: code for code, value in enumerate(self.vocab[name])}
            self._codes[name] = [-1 if t is None else index.get(t, -1) for t in self._label_text[name]]

    def __len__(self) -> int:
        return len(self.ids)

    def label_values(self, name: str) -> list[str | None]:
        """The raw value of a label column (or ``group``) per record as text (``None`` = missing).

        Any label column of the manifest works, not only the ones given as ``labels``.

        Raises:
            KeyError: ``name`` is not a label column or ``group`` of the manifest.
        """
        if name in self._label_text:
            return list(self._label_text[name])
        if name in self.manifest.label_columns or (
            name == "group" and "group" in self.manifest.frame.columns
        ):
            return [label_text(v) for v in self.manifest.frame[name].tolist()]
        raise KeyError(
            f"{name!r} is not a label column of {self.manifest.name}; label columns are "
            f"{list(self.manifest.label_columns)}"
        )

    def present(self, view: str) -> list[bool]:
        """Whether ``view`` is present for each record (without reading anything)."""
        return [v is not None for v in self._values[view]]

    def read_view(self, index: int, view: str) -> Any:
        """Read (and transform) one view of one record; ``None`` when it is absent.

        Raises:
            ReadError: The value cannot be read; names the manifest, the record and the view.
        """
        value = self._values[view][index]
        if value is None:
            return None
        config = self.views[view]
        record_id = self.ids[index]
        try:
            sample = config.reader.read(value, record_id=record_id, base_dir=self.manifest.base_dir)
        except ReadError as exc:
            source = f" ({exc.path})" if exc.path and exc.path != self.manifest.name else ""
            raise ReadError(
                f"view {view!r}{source}: {exc.reason}", path=self.manifest.name, record=record_id
            ) from exc
        except ScibindError:
            raise
        except Exception as exc:
            raise ReadError(
                f"view {view!r}: reader {type(config.reader).__name__} failed ({type(exc).__name__}: {exc})",
                path=self.manifest.name,
                record=record_id,
            ) from exc
        data = sample.data
        transform = self.transforms.get(view)
        return transform(data) if transform is not None else data

    def __getitem__(self, index: int) -> Item:
        if not -len(self) <= index < len(self):
            raise IndexError(f"record index {index} out of range for {len(self)} records")
        index %= len(self)
        return {
            "id": self.ids[index],
            "views": {view: self.read_view(index, view) for view in self.views},
            "targets": {name: self._codes[name][index] for name in self.target_names},
        }

    def collate(self, items: Sequence[Item]) -> Batch:
        """Collate items into a :class:`Batch`.

        ``present[view]`` is ``bool[B]`` for every view. ``views[view]`` holds the modality's collate output
        over the present records and their positions ``index``; a view absent from every record of the batch
        has no entry in ``views``. ``targets[name]`` is ``int64[B]``.

        Raises:
            ShapeError: Samples of one view cannot be stacked; names the view and records.
        """
        ids = [item["id"] for item in items]
        views: dict[str, ModalityBatch] = {}
        present: dict[str, torch.Tensor] = {}
        for view, config in self.views.items():
            values = [item["views"].get(view) for item in items]
            mask = torch.tensor([v is not None for v in values], dtype=torch.bool)
            present[view] = mask
            index = torch.nonzero(mask, as_tuple=False).flatten().to(torch.int64)
            if index.numel() == 0:
                continue
            data = [values[i] for i in index.tolist()]
            try:
                collated = collate_for_modality(config.modality)(data)
            except ShapeError as exc:
                shown = ", ".join(repr(ids[i]) for i in index.tolist()[:5])
                raise ShapeError(
                    f"view {view!r} (records {shown}{', ...' if index.numel() > 5 else ''}): {exc}"
                ) from exc
            views[view] = ModalityBatch(data=collated, index=index)
        targets = {
            name: torch.tensor([item["targets"][name] for item in items], dtype=torch.int64)
            for name in self.target_names
        }
        return Batch(ids=ids, views=views, present=present, targets=targets)
