"""``scibind medical-index``: a DICOM export -> pseudonymous manifest (one record per image series)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["medical_index"]


def medical_index(
    root: Annotated[Path, typer.Argument(help="Folder tree of DICOM files (any names, any nesting).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for manifest.csv and series/.")],
    salt_file: Annotated[
        Path | None,
        typer.Option(
            "--salt-file", help="File holding the secret pseudonym salt (else $SCIBIND_PSEUDONYM_SALT)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Index DICOM image series into a manifest whose ids are salted pseudonyms of patient + study.

    Writes OUT/manifest.csv (id, ct_volume, group, imaging_modality, n_files) and one
    OUT/series/<id>.series.json listing per series. No identifying header value is written.
    """
    import json

    from scibind_medical_imaging.index import index_dicom
    from scibind_medical_imaging.phi import load_salt

    summary = index_dicom(root, out, salt=load_salt(salt_file=salt_file))
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
        return
    typer.echo(
        f"{summary.series} series ({summary.files} files) -> {summary.manifest}; skipped {summary.non_image} "
        f"non-image objects and {summary.unreadable} unreadable files"
    )
