"""`scibind prepare`: real PNGs, a corrupt file, manifests, resumption, strict mode, workers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

PNG_DIR = "medical/cxr/png"


@pytest.fixture
def pngs(shared_data_dir) -> list[Path]:
    files = sorted((shared_data_dir / PNG_DIR).glob("*.png"))
    assert len(files) >= 10
    return files


@pytest.fixture
def corrupt(tmp_path, pngs) -> Path:
    path = tmp_path / "bad" / "corrupt.png"
    path.parent.mkdir()
    path.write_bytes(pngs[0].read_bytes()[:300])
    return path


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def quarantine_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]


def test_folder_with_a_corrupt_file_quarantines_it_and_prepares_the_rest(
    cli, tmp_path, shared_data_dir, corrupt
):
    out = tmp_path / "out"
    result = cli("prepare", str(shared_data_dir / PNG_DIR), str(corrupt.parent), "--out", str(out), "--json")
    assert result.code == 0, result.stderr
    summary = summary_of(out)
    assert json.loads(result.stdout)["prepared"] == summary["prepared"] == 10
    assert (summary["total"], summary["skipped"], summary["quarantined"]) == (11, 0, 1)
    [bad] = quarantine_of(out)
    assert bad["path"] == str(corrupt) and bad["record"] is None
    assert "corrupt.png" in bad["reason"] and "truncated" in bad["reason"]
    markers = list((out / "state").glob("*.json"))
    assert len(markers) == 10
    marker = json.loads(markers[0].read_text(encoding="utf-8"))
    assert marker["status"] == "done" and marker["reader"] == "core/image"
    assert marker["summary"]["modality"] == "image"
    assert (out / "cache" / "core" / "image" / marker["key"]).is_dir()


def test_rerun_skips_finished_items_and_retries_bad_ones(cli, tmp_path, pngs, corrupt):
    out = tmp_path / "out"
    sources = [str(p) for p in pngs[:3]] + [str(corrupt)]
    assert cli("prepare", *sources, "--out", str(out)).code == 0
    first = sorted(p.name for p in (out / "state").iterdir())
    again = cli("prepare", *sources, "--out", str(out), "--json")
    assert again.code == 0
    summary = summary_of(out)
    assert (summary["prepared"], summary["skipped"], summary["quarantined"]) == (0, 3, 1)
    assert sorted(p.name for p in (out / "state").iterdir()) == first
    assert len(quarantine_of(out)) == 1, "quarantine.jsonl describes the latest run only"


def test_killed_run_resumes(cli, tmp_path, pngs):
    out = tmp_path / "out"
    sources = [str(p) for p in pngs[:4]]
    assert cli("prepare", *sources, "--out", str(out)).code == 0
    # What a run killed while preparing item 3 leaves behind: no marker for it, a partial cache folder.
    marker = sorted((out / "state").glob("*.json"))[2]
    key = json.loads(marker.read_text(encoding="utf-8"))["key"]
    marker.unlink()
    partial = out / "cache" / "core" / "image" / key / "partial.tmp"
    partial.write_text("half-written", encoding="utf-8")
    assert cli("prepare", *sources, "--out", str(out)).code == 0
    summary = summary_of(out)
    assert (summary["prepared"], summary["skipped"]) == (1, 3)
    assert marker.exists() and not partial.exists()


def test_strict_makes_a_bad_item_fatal(cli, tmp_path, pngs, corrupt):
    out = tmp_path / "out"
    result = cli("prepare", str(corrupt), str(pngs[0]), "--out", str(out), "--strict")
    assert result.code == 1
    summary = summary_of(out)
    assert summary["stopped_early"] and summary["quarantined"] == 1


def test_all_items_failing_exits_1(cli, tmp_path, corrupt):
    result = cli("prepare", str(corrupt.parent), "--out", str(tmp_path / "out"), "--json")
    assert result.code == 1
    assert json.loads(result.stdout)["quarantined"] == 1


def test_manifest_items_are_read_by_the_views_modality(cli, tmp_path, pngs):
    manifest = tmp_path / "pairs.csv"
    rows = [
        "id,image,caption,features,label",
        f'r1,{pngs[0]},a frontal chest film,"[1, 2, 3]",a',
        f'r2,{pngs[1]},,"[4, 5, 6]",b',
        'r3,missing.png,lateral film,"[7, ""x"", 9]",a',
    ]
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = cli(
        "prepare",
        str(manifest),
        "--out",
        str(out),
        "--json",
        "--set",
        "views.caption=text",
        "--set",
        "views.features=vector",
        "--set",
        "views.image=image",
    )
    assert result.code == 0, result.stderr
    summary = summary_of(out)
    # r1: 3 views, r2: image + features (caption absent), r3: caption ok, image missing, features bad
    assert (summary["total"], summary["prepared"], summary["quarantined"]) == (8, 6, 2)
    assert summary["readers"] == {"core/image": 3, "core/text": 2, "core/vector": 3}
    bad = {(q["record"], q["view"]) for q in quarantine_of(out)}
    assert bad == {("r3", "image"), ("r3", "features")}
    assert all(q["reason"] for q in quarantine_of(out))


def test_manifest_columns_named_after_modalities_are_views(cli, tmp_path):
    manifest = tmp_path / "m.jsonl"
    lines = [{"id": "a", "text": "first", "vector": [1, 2]}, {"id": "b", "text": "second", "vector": [3, 4]}]
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    assert cli("prepare", str(manifest), "--out", str(tmp_path / "out")).code == 0
    assert summary_of(tmp_path / "out")["prepared"] == 4


def test_reader_options_change_the_output_and_the_cache_key(cli, tmp_path, pngs):
    out = tmp_path / "out"
    assert (
        cli("prepare", str(pngs[0]), "--out", str(out), "--set", "reader.core/image.size=[32, 24]").code == 0
    )
    [marker] = [json.loads(p.read_text(encoding="utf-8")) for p in (out / "state").glob("*.json")]
    assert marker["summary"]["shape"][1:] == [32, 24]
    assert cli("prepare", str(pngs[0]), "--out", str(out), "--set", "reader.image.size=[16, 16]").code == 0
    assert summary_of(out)["prepared"] == 1, "other options are another cache entry, never a stale one"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "reader.core/image.bogus=1"], "rejected the options"),
        (["--set", "nonsense=1"], "unknown key"),
        (["--set", "reader.core/nothing.size=1"], "no reader named"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_bad_options_exit_2(cli, tmp_path, pngs, args, message):
    result = cli("prepare", str(pngs[0]), "--out", str(tmp_path / "out"), *args)
    assert result.code == 2
    assert message in result.stderr


def test_nothing_to_prepare_exits_2(cli, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "README.md").write_text("nothing here", encoding="utf-8")
    result = cli("prepare", str(folder), "--out", str(tmp_path / "out"))
    assert result.code == 2 and "nothing to prepare" in result.stderr
    assert cli("prepare", str(tmp_path / "absent"), "--out", str(tmp_path / "out")).code == 2


def test_walk_skips_unclaimed_files_and_the_output_folder(cli, tmp_path):
    folder = tmp_path / "cells"
    folder.mkdir()
    for i in range(3):
        (folder / f"c{i}.kv").write_text(f"area_um2 = {i}\n", encoding="utf-8")
    (folder / "notes.md").write_text("not data", encoding="utf-8")
    out = folder / "prepared"
    assert cli("prepare", str(folder), "--out", str(out)).code == 0
    assert cli("prepare", str(folder), "--out", str(out)).code == 0
    summary = summary_of(out)
    assert (summary["total"], summary["skipped"], summary["ignored"]) == (3, 3, 1)


@pytest.mark.slow
def test_workers_give_the_same_result(cli, tmp_path, pngs, corrupt):
    src = tmp_path / "src"
    src.mkdir()
    for p in pngs[:4]:
        shutil.copy(p, src / p.name)
    shutil.copy(corrupt, src / corrupt.name)
    serial, pooled = tmp_path / "serial", tmp_path / "pooled"
    assert cli("prepare", str(src), "--out", str(serial)).code == 0
    assert cli("prepare", str(src), "--out", str(pooled), "--workers", "2").code == 0
    assert sorted(p.name for p in (serial / "state").iterdir()) == sorted(
        p.name for p in (pooled / "state").iterdir()
    )
    assert summary_of(pooled)["quarantined"] == 1


def test_overrides_sort_reader_options_groups_and_views():
    from scibind.prepare.options import parse_overrides

    options = parse_overrides(
        ["reader.core/image.size=[8, 8]", "tiling.mpp=0.5", "tiling.tile_size=256", "views.caption=text"]
    )
    assert options.reader_kwargs == {"core/image": {"size": [8, 8]}}
    assert options.groups == {"tiling": {"mpp": 0.5, "tile_size": 256}}
    assert options.views == {"caption": "text"}


class _SeriesFolderReader:
    """A folder-layout reader whose folders mix samples (like DICOM series): one item per ``*.part``."""

    modality = "text"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def items(self, folder: Path) -> list[str]:
        if self.fail:
            raise ValueError(f"{folder}: cannot list the series")
        parts = [f"{folder}#{p.stem}" for p in sorted(folder.glob("*.part"))]
        return parts + [str(p) for p in sorted(folder.glob("*.broken"))]


def test_a_reader_splits_a_claimed_folder_into_items(tmp_path, scibind_load_plugins):
    import scibind
    from scibind.data.readers import Reader
    from scibind.prepare.items import collect_items
    from scibind.prepare.options import parse_overrides
    from scibind.registry import ReaderSpec

    class Splitter(_SeriesFolderReader, Reader):
        pass

    class Plugin:
        @staticmethod
        @scibind.hookimpl
        def scibind_register_readers(register):
            register(
                ReaderSpec("series", "test", modality="text", factory=Splitter, patterns=("dir:*.part",))
            )

    scibind_load_plugins({"t": Plugin})
    study = tmp_path / "src" / "study"
    study.mkdir(parents=True)
    for name in ("s1.part", "s2.part", "x.broken"):
        (study / name).write_text("x")
    found = collect_items([tmp_path / "src"], parse_overrides([]), tmp_path / "out")
    assert [i.path for i in found.items] == [f"{study}#s1", f"{study}#s2", str(study / "x.broken")]
    assert len({i.key for i in found.items}) == 3 and not found.rejected
    failing = collect_items(
        [tmp_path / "src"], parse_overrides(["reader.t/series.fail=true"]), tmp_path / "out"
    )
    assert not failing.items
    [bad] = failing.rejected
    assert bad["path"] == str(study) and "cannot list the series" in bad["reason"]


def test_a_view_can_name_its_reader(cli, tmp_path, pngs):
    manifest = tmp_path / "pairs.csv"
    manifest.write_text(f"id,scan,caption\nr1,{pngs[0]},a film\nr2,{pngs[1]},another\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["prepare", str(manifest), "--out", str(out), "--json", "--set", "views.caption=text"]
    result = cli(*args, "--set", "views.scan=core/image")
    assert result.code == 0, result.stderr
    assert summary_of(out)["readers"] == {"core/image": 2, "core/text": 2}
    unknown = cli(*args, "--set", "views.scan=core/no-such-reader")
    assert unknown.code == 2 and "core/no-such-reader" in unknown.stderr
