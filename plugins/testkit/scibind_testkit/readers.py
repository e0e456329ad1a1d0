"""The reader contract: valid input -> a :class:`Sample` with provenance; bad input -> a named ReadError."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from scibind.registry import ReaderSpec, Registry

from scibind_testkit.imports import assert_light

__all__ = ["ReaderContract"]


class ReaderContract:
    """Subclass as ``TestMyReader(ReaderContract)``, set :attr:`reader_name`, implement the two inputs.

    Attributes:
        reader_name: The registered reader, e.g. ``"core/vector"``.
        reader_kwargs: Options passed to ``scibind.create_reader``.
        record_id: The record id the tests pass to ``read``.
    """

    reader_name: ClassVar[str] = ""
    reader_kwargs: ClassVar[dict[str, Any]] = {}
    record_id: ClassVar[str] = "record-1"

    def make_valid_input(self, tmp_path: Path) -> Any:
        """Return a value the reader must read: a path (str) written under ``tmp_path`` or an inline value."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_valid_input(tmp_path)")

    def make_bad_input(self, tmp_path: Path) -> Any:
        """Return a value the reader must reject with a ReadError (corrupt file, malformed value)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_bad_input(tmp_path)")

    @pytest.fixture
    def reader_spec(self, scibind_registry: Registry) -> ReaderSpec:
        """The registered spec of :attr:`reader_name`."""
        assert self.reader_name, f"{type(self).__name__}: set reader_name"
        return scibind_registry.get("readers", self.reader_name)

    @pytest.fixture
    def reader(self, reader_spec: ReaderSpec) -> Any:
        """The reader built through ``scibind.create_reader``."""
        import scibind

        return scibind.create_reader(reader_spec.name, **self.reader_kwargs)

    @pytest.fixture
    def valid_input(self, tmp_path: Path) -> Any:
        """See :meth:`make_valid_input`."""
        return self.make_valid_input(tmp_path)

    @pytest.fixture
    def bad_input(self, tmp_path: Path) -> Any:
        """See :meth:`make_bad_input`."""
        return self.make_bad_input(tmp_path)

    def test_reader_is_a_reader_of_its_modality(
        self, reader: Any, reader_spec: ReaderSpec, scibind_registry: Registry
    ):
        """Contract: reader is a reader of its modality."""
        from scibind.data.readers import Reader

        assert isinstance(reader, Reader)
        assert reader_spec.modality in scibind_registry.entries["modalities"], (
            f"reader {reader_spec.name!r} yields modality {reader_spec.modality!r}, which no plugin registers"
        )
        assert reader.modality == reader_spec.modality

    def test_reads_valid_input(self, reader: Any, reader_spec: ReaderSpec, valid_input: Any, tmp_path: Path):
        """Contract: reads valid input."""
        from scibind.data.types import Sample

        sample = reader.read(valid_input, record_id=self.record_id, base_dir=tmp_path)
        assert isinstance(sample, Sample)
        assert sample.modality == reader_spec.modality
        assert sample.id == self.record_id
        assert sample.data is not None
        assert "source" in sample.meta or "record" in sample.meta, "Sample.meta must carry provenance"
        if isinstance(valid_input, (str, Path)) and Path(valid_input).exists():
            assert Path(valid_input).name in str(sample.meta.get("source", "")), (
                "Sample.meta['source'] must name the file that was read"
            )

    def test_reading_twice_gives_the_same_sample(self, reader: Any, valid_input: Any, tmp_path: Path):
        """Contract: reading twice gives the same sample."""
        first = reader.read(valid_input, record_id=self.record_id, base_dir=tmp_path)
        second = reader.read(valid_input, record_id=self.record_id, base_dir=tmp_path)
        assert repr(first.data) == repr(second.data)

    def test_bad_input_raises_read_error_naming_it(self, reader: Any, bad_input: Any, tmp_path: Path):
        """Contract: bad input raises read error naming it."""
        from scibind.errors import ReadError

        with pytest.raises(ReadError) as info:
            reader.read(bad_input, record_id="bad-record", base_dir=tmp_path)
        message = str(info.value)
        if isinstance(bad_input, (str, Path)) and Path(tmp_path, bad_input).exists():
            assert Path(bad_input).name in message, f"the error must name the file: {message!r}"
        else:
            assert "bad-record" in message, f"the error must name the record: {message!r}"

    def test_describe_valid_file(self, reader: Any, reader_spec: ReaderSpec, valid_input: Any):
        """Contract: describe valid file."""
        if not (isinstance(valid_input, (str, Path)) and Path(valid_input).exists()):
            pytest.skip("valid input is inline; describe() takes a path")
        info = reader.describe(Path(valid_input))
        assert isinstance(info, dict)
        assert info.get("modality", reader_spec.modality) == reader_spec.modality

    def test_plugin_module_imports_no_heavy_library(self, reader_spec: ReaderSpec):
        """Contract: plugin module imports no heavy library."""
        assert_light(reader_spec.plugin)
