"""How the code is laid out, checked: modules that do one job, layers that point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clipguide"
#: The library's core: it works the same with or without the shipped demo models.
CORE = ("engine", "api", "build", "session", "generators", "perceptor", "cutouts", "augments", "prompts", "settings",
        "specs", "output", "weights", "checkpoints", "presets", "metrics", "losses", "targets", "schedules",
        "registry")
MAX_LINES = 400


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these along their jobs: {long}"


def test_no_core_module_imports_the_demo():
    offenders = []
    for name in CORE:
        paths = list((PACKAGE / name).rglob("*.py")) if (PACKAGE / name).is_dir() else [PACKAGE / f"{name}.py"]
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    module = "." * node.level + (node.module or "")
                    if "demo" in module.split("."):
                        offenders.append(f"{path.relative_to(PACKAGE)}: from {module}")
                elif isinstance(node, ast.Import):
                    offenders += [f"{path.relative_to(PACKAGE)}: import {a.name}" for a in node.names
                                  if "clipguide.demo" in a.name]
    assert not offenders


def test_light_modules_do_not_import_torch():
    """Settings, presets, registries, schedules and the CLI's parsing stay cheap to import."""
    code = ("import sys, clipguide.settings, clipguide.presets, clipguide.registry, clipguide.schedules, "
            "clipguide.cli, clipguide.cli_flags, clipguide.output.record, clipguide.animation.cli, clipguide.scale, "
            "clipguide.batch.cli, clipguide.telephone.cli; "
            "print('torch' in sys.modules, 'ray' in sys.modules)")  # Ray only ever under --ray
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


def test_the_wheel_carries_the_demo_models_but_not_their_training_logs():
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    root = PACKAGE.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    included = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert "weights" not in included and not any("logs" in source for source in included)
    manifest = root / "weights" / "manifest.toml"
    shipped = [line.split('"')[1] for line in manifest.read_text().splitlines() if line.startswith("path = ")]
    assert shipped, "the manifest names the shipped demo files"
    for path in shipped:  # every file the manifest ships is in the wheel
        assert any(("weights/" + path).startswith(source) for source in included), path
