"""The package as a user gets it: a wheel built from the source tree, installed into a fresh virtual
environment outside the repository, and run from there (package data included: the AI Feynman list,
the LLM prompts; LICENSE in the wheel's metadata).

The fresh environment has no network: its dependencies (torch, numpy, ...) are the test environment's,
put on its path by a plain `.pth` line, which Python does not process as a site directory, so the
repository's editable install stays out of it; `actmine` itself comes only from the wheel (checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from actmine import __version__

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = (
    "actmine/data/FeynmanEquations.csv",
    "actmine/data/README.md",
    "actmine/evolve/prompts/system.txt",
    "actmine/evolve/prompts/mutate.txt",
)


def _source_tree(destination: Path) -> Path:
    """What a source distribution holds: pyproject, README, LICENSE and the package (no caches)."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, destination / name)
    shutil.copytree(ROOT / "actmine", destination / "actmine", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


def _run(args: list, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel path, the fresh environment's bin directory, an environment for its commands, a cwd)."""
    base = tmp_path_factory.mktemp("release")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    src = _source_tree(base / "src")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            base / "dist",
            src,
        ],
        cwd=base,
        env=env,
    )
    wheel = next((base / "dist").glob("actmine-*.whl"))
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base, env=env)
    fresh_python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [fresh_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base, env=env
        ).stdout.strip()
    )
    (purelib / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", fresh_python, "install", "--quiet", "--no-deps", "--no-index", wheel],
        cwd=base,
        env=env,
    )
    work = base / "elsewhere"
    work.mkdir()
    return wheel, venv / "bin", env, work


def test_the_wheel_holds_the_package_data_and_the_license(installed):
    wheel, *_ = installed
    assert wheel.name.startswith(f"actmine-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    for data in PACKAGE_DATA:
        assert data in names, f"{data} is not in the wheel: pyproject's package-data misses it"
    licence = [n for n in names if n.endswith("LICENSE")]
    assert licence and "Apache License" in zipfile.ZipFile(wheel).read(licence[0]).decode()
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_the_installed_command_comes_from_the_wheel_and_says_its_version(installed):
    _, bin_dir, env, work = installed
    where = _run([bin_dir / "python", "-c", "import actmine; print(actmine.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(bin_dir.parent), f"actmine imported from {where}, not the fresh environment"
    out = _run([bin_dir / "actmine", "--version"], work, env).stdout
    assert out.startswith(f"actmine {__version__} (torch ") and "Python" in out


def test_the_installed_command_evaluates_a_program_file_in_its_sandbox(installed):
    _, bin_dir, env, work = installed
    program = work / "candidate.py"
    program.write_text("def activation_function(x):\n    return F.gelu(x) + 0.1 * torch.sin(x)\n")
    out = _run([bin_dir / "actmine", "evaluate", program, "--seeds", "1", "--steps", "5", "--json"], work, env).stdout
    result = json.loads(out)
    families = set(result["families"]) if "families" in result else {t["family"] for t in result["tasks"]}
    assert "feynman" in families  # the bundled AI Feynman list was read
    assert result.get("ok", True) and isinstance(result["fitness"], float)


def test_the_installed_command_runs_a_tiny_search(installed):
    _, bin_dir, env, work = installed
    suite = {
        "name": "tiny",
        "seeds": [0],
        "tasks": [{"family": "polynomial", "dim": 1, "seed": 0}, {"family": "feynman", "equation": "I.14.3"}],
    }
    (work / "tiny.yaml").write_text(yaml.safe_dump(suite))
    config = {
        "search": {"budget": 4, "time_limit": 0, "islands": 1, "heldout_top": 1, "initial_programs": ["relu"]},
        "executor": {"workers": 1},
        "lab": {
            "suite": str(work / "tiny.yaml"),
            "heldout_suite": str(work / "tiny.yaml"),
            "training_seeds": 1,
            "steps": 10,
        },
        "sandbox": {"timeout_s": 60, "cpu_s": 60, "memory_mb": 3072},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    _run(
        [bin_dir / "actmine", "search", "--config", work / "config.yaml", "--run-dir", work / "run", "--quiet"],
        work,
        env,
    )
    assert (work / "run" / "best_activation.py").is_file() and (work / "run" / "report.html").is_file()
