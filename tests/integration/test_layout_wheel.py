"""The package builds: ``python -m build`` makes an sdist and a wheel, ``twine check`` passes, the wheel has one
top-level package, the sdist holds nothing of a working checkout, and the version is the one in
``inferwatch/__init__.py``."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from inferwatch import __version__
from tests.support import ROOT

# What a working checkout holds that no release should.
NOT_IN_SDIST = (".venv/", "__pycache__/", ".pytest_cache/", ".mypy_cache/", "bench/results/", "test-artifacts/")


def test_build_makes_a_clean_sdist_and_wheel_that_twine_accepts(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("inferwatch-*.whl")
    (sdist,) = out.glob("inferwatch-*.tar.gz")
    assert wheel.name.startswith(f"inferwatch-{__version__}-")
    assert sdist.name == f"inferwatch-{__version__}.tar.gz"
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"inferwatch"}
    for module in (
        "inferwatch/cli.py",
        "inferwatch/contracts/vllm.py",
        "inferwatch/services/aggregator/app.py",
        "inferwatch/services/aggregator/rules/default.yaml",
        "inferwatch/services/aggregator/static/status.html",
        "inferwatch/shared/exposition.py",
    ):
        assert module in names
    metadata = zf_text(wheel, f"inferwatch-{__version__}.dist-info/METADATA")
    assert "Provides-Extra: grpc" in metadata
    assert "Provides-Extra: langfuse-db" in metadata

    with tarfile.open(sdist) as tf:
        members = tf.getnames()
    leaked = [m for m in members for bad in NOT_IN_SDIST if f"/{bad}" in m + "/"]
    assert leaked == []
    assert f"inferwatch-{__version__}/pyproject.toml" in members


def zf_text(wheel: Path, name: str) -> str:
    """One member of a wheel as text."""
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(name).decode()
