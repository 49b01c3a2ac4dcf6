"""The built wheel has one top-level package (pip wheel in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import ROOT


def test_the_wheel_has_one_top_level_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("inferwatch-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"inferwatch"}
    for module in (
        "inferwatch/cli.py",
        "inferwatch/contracts/vllm.py",
        "inferwatch/services/aggregator/app.py",
        "inferwatch/services/aggregator/rules/default.yaml",
        "inferwatch/shared/exposition.py",
    ):
        assert module in names
