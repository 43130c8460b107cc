"""The code location loads: the workspace's module gives one valid Definitions object."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from crypto_platform.definitions import build_definitions

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_workspace_points_at_the_definitions_module() -> None:
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    target = workspace["load_from"][0]["python_module"]
    module = __import__(target["module_name"], fromlist=[target["attribute"]])
    defs = getattr(module, target["attribute"])
    assert isinstance(defs, dg.Definitions)
    assert "kafka" in defs.resources


def test_dagster_validates_the_workspace(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": str(Path(sys.executable).parent),
            "DAGSTER_HOME": str(tmp_path),
            "HOME": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_build_definitions_uses_the_given_settings(settings_factory) -> None:
    settings = settings_factory(kafka_bootstrap_servers="10.0.0.1:9092")
    defs = build_definitions(settings)
    assert defs.resources["kafka"].bootstrap_servers == "10.0.0.1:9092"
