"""`scibind demo` end to end: the real pipeline on generated data, ending in linked HTML reports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCIBIND = shutil.which("scibind", path=str(Path(sys.executable).parent))


@pytest.mark.slow
def test_demo_trains_every_demo_recipe_and_links_reports(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([SCIBIND, "demo", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"demo report: {(out / 'index.html').resolve()}" in done.stdout

    index = (out / "index.html").read_text(encoding="utf-8")
    linked = re.findall(r'href="([^"]+report\.html)"', index)
    assert {"core-synthetic-clip/report.html", "core-synthetic-text-clip/report.html"} <= set(linked)
    for link in linked:
        report = (out / link).read_text(encoding="utf-8")
        for png in re.findall(r'src="([^"]+\.png)"', report):
            assert (out / link).parent.joinpath(png).stat().st_size > 1000

    metrics = json.loads((out / "core-synthetic-clip" / "eval" / "metrics.json").read_text())
    for direction in ("view_a->view_b", "view_b->view_a"):
        assert metrics[f"{direction}/R@1"] > 50 * metrics[f"{direction}/R@1_chance"]
        assert metrics[f"{direction}/MRR"] > 0.8

    text_metrics = json.loads((out / "core-synthetic-text-clip" / "eval" / "metrics.json").read_text())
    assert text_metrics["zero_shot/view_a/accuracy"] > 0.6  # 5 classes: chance is 0.2
