"""SD files: split into record blocks (with byte offsets), properties parsed, broken blocks reported.

RDKit's ``SDMolSupplier`` returns ``None`` for a broken record and logs the reason; these helpers keep each
record's text so a broken one is quarantined with RDKit's reason and its record number, and a manifest can
point at one record (``library.sdf#17``) without the whole file being parsed again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SDFRecord", "parse_properties", "split_sdf"]

_PROPERTY = re.compile(r"^>\s*.*?<([^>]+)>")


@dataclass
class SDFRecord:
    """One ``$$$$``-terminated record of an SD file.

    Attributes:
        index: 0-based record number in the file.
        line: 1-based line where the record starts.
        molblock: The mol block (header, counts, atoms, bonds, ``M  END``).
        properties: The ``> <name>`` data items, in file order.
    """

    index: int
    line: int
    molblock: str
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The record's title line (may be empty)."""
        return self.molblock.split("\n", 1)[0].strip()


def parse_properties(lines: list[str]) -> dict[str, str]:
    """The ``> <name>`` data items of an SD record's data section (values joined by newlines)."""
    props: dict[str, str] = {}
    current: str | None = None
    values: list[str] = []
    for line in lines:
        match = _PROPERTY.match(line)
        if match:
            if current is not None:
                props[current] = "\n".join(values).strip()
            current, values = match.group(1), []
        elif current is not None:
            if line.strip() == "":
                props[current] = "\n".join(values).strip()
                current, values = None, []
            else:
                values.append(line)
    if current is not None:
        props[current] = "\n".join(values).strip()
    return props


def split_sdf(text: str) -> list[SDFRecord]:
    """Split SD file text into records (a trailing block without ``$$$$`` counts as one record)."""
    records: list[SDFRecord] = []
    lines = text.replace("\r\n", "\n").split("\n")
    start = 0
    for i, line in enumerate([*lines, "$$$$"]):
        if line.rstrip() != "$$$$":
            continue
        block = lines[start:i]
        if any(part.strip() for part in block):
            end = next((j for j, b in enumerate(block) if b.startswith("M  END")), None)
            mol_lines = block if end is None else block[: end + 1]
            data_lines = [] if end is None else block[end + 1 :]
            records.append(
                SDFRecord(len(records), start + 1, "\n".join(mol_lines) + "\n", parse_properties(data_lines))
            )
        start = i + 1
    return records


def read_sdf(path: Path) -> list[SDFRecord]:
    """The records of an SD file (UTF-8, Latin-1 tolerated)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return split_sdf(text)
