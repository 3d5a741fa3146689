"""The installed distribution exposes one import root, ``tierflow``, with its data files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("operators", "streams", "topics", "infra", "grafana")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of this checkout (no network: the venv's setuptools builds it).

    A copy, because setuptools keeps a build/ folder whose stale files would enter the wheel.
    """
    out = tmp_path_factory.mktemp("wheel")
    tree = tmp_path_factory.mktemp("tree") / "tierflow"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "out", "*.egg-info", ".*_cache")
    shutil.copytree(ROOT, tree, symlinks=True, ignore=skip)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*pip, "-w", str(out), str(tree)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("tierflow-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_has_no_top_level_package_but_tierflow(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    packages = {top for top in tops if not top.endswith(".dist-info")}
    assert packages == {"tierflow"}


def test_the_wheel_carries_every_subpackage_and_its_data_files(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder in FOLDERS:
        assert f"tierflow/{folder}/__init__.py" in names
    for data in (
        "tierflow/py.typed",
        "tierflow/infra/kafka/pom.xml",
        "tierflow/infra/prometheus/prometheus.yml",
        "tierflow/grafana/dashboards/tierflow-pipeline.json",
        "tierflow/operators/planning/workflow/default_workflow.toml",
    ):
        assert data in names
    # every Python file of the folders is in the wheel under tierflow/
    for folder in FOLDERS:
        for source in (ROOT / folder).rglob("*.py"):
            assert f"tierflow/{source.relative_to(ROOT).as_posix()}" in names


def test_each_folder_is_the_subpackage_of_the_same_name() -> None:
    for folder in FOLDERS:
        link = ROOT / "tierflow" / folder
        assert link.is_symlink() and link.resolve() == (ROOT / folder).resolve()
