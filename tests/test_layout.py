"""Install layout: platform/ is a source root, never an importable module shadowing the stdlib."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_no_platform_package():
    assert not (REPO / "platform" / "__init__.py").exists()


def test_stdlib_platform_not_shadowed_from_repo_root():
    code = "import platform, torch, expunge; platform.system(); print(platform.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "platform/expunge" not in out.stdout and out.stdout.strip().endswith("platform.py")


def test_sub_packages_install_under_expunge():
    import expunge.jobs
    import expunge.llm

    assert Path(expunge.jobs.__file__).parent == REPO / "jobs"
    assert Path(expunge.llm.__file__).parent == REPO / "llm"


def test_every_package_directory_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"expunge.jobs", "expunge.llm"}
    for init in (REPO / "platform").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO / "platform").parts))
    assert found == listed


@pytest.mark.ray
@pytest.mark.slow
def test_ray_worker_with_repo_working_dir_imports_torch(repo_root):
    """A worker whose cwd is the repository (a runtime_env working_dir) must get the stdlib platform."""
    import ray

    from expunge.runtime import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(num_cpus=1, runtime_env={"working_dir": str(repo_root),
                                      "excludes": [".venv", "runs", ".git", "*.egg-info", "**/__pycache__"]})
    try:
        @ray.remote
        def probe():
            import os
            import platform

            import torch

            return os.path.isdir("platform/expunge"), platform.system(), torch.__version__

        in_repo, system, version = ray.get(probe.remote(), timeout=120)
        assert in_repo and system and version
    finally:
        ray.shutdown()
