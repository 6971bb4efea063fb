"""The shape of the package (docs/architecture.md): commands and the Python API alone at the top of
jaxgan/, console scripts for the commands users run, imports of
jaxgan's own modules at module top, and no citation of notes outside the repository. The layering
itself (a layer imports only the layers under it) is import-linter's contract in pyproject.toml,
which CI runs as `lint-imports`; `test_the_layer_contract_is_kept` runs it here too."""

from __future__ import annotations

import ast
import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxgan"
COMMANDS = {
    "main", "evaluate", "generate", "translate", "interpolate", "bench", "chaos", "transfer_convert",
    "import_weights",
}  # fmt: skip
PYTHON_API = {"api", "metrics"}  # `jaxgan.train`, `jaxgan.load_generator`, `jaxgan.metrics.compute`


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_top_of_the_package_holds_only_commands():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == COMMANDS | PYTHON_API, (
        f"not a command at the top of jaxgan/: {sorted(top - COMMANDS)}"
    )
    for name in sorted(COMMANDS):
        source = (PACKAGE / f"{name}.py").read_text()
        assert 'if __name__ == "__main__":' in source, f"jaxgan/{name}.py runs nothing"


def test_each_console_script_runs_a_command():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {
        f"jaxgan-{n}" for n in ("train", "evaluate", "generate", "translate", "prepare", "import")
    }
    for script, target in scripts.items():
        module, function = target.split(":")
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"{script}: {module} defines no {function}()"


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_imported_package_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    optional = {
        _requirement_name(r) for rs in project["optional-dependencies"].values() for r in rs
    }
    distributions = importlib.metadata.packages_distributions()
    imported = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else node.module.split(".")[0]
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom) and not getattr(node, "level", 0)
        for alias in (node.names if isinstance(node, ast.Import) else node.names[:1])
    }
    third_party = imported - set(sys.stdlib_module_names) - {"jaxgan"}
    missing = {}
    for module in sorted(third_party):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & (declared | optional):
            missing[module] = sorted(names)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def _function_level_imports_of_jaxgan(tree: ast.Module) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("jaxgan"):
                    lines.append(inner.lineno)
                elif isinstance(inner, ast.Import) and any(
                    a.name.startswith("jaxgan") for a in inner.names
                ):
                    lines.append(inner.lineno)
    return sorted(set(lines))


def test_jaxgans_own_modules_are_imported_at_module_top():
    # A function-level import hides a layering problem (a circle, an upward import) from review;
    # only a heavy optional third-party dependency (torch, matplotlib, sklearn) is imported late.
    found = {
        str(p.relative_to(ROOT)): lines
        for p in _modules()
        if (lines := _function_level_imports_of_jaxgan(ast.parse(p.read_text())))
    }
    assert not found, f"function-level imports of jaxgan modules (file: lines): {found}"


def test_code_cites_nothing_outside_the_repository():
    pattern = re.compile(r"specs/|shared/specs|spec §|\.\./shared")
    files = [*_modules()]
    for folder in ("tests", "scripts", "benchmarks"):
        files += [p for p in (ROOT / folder).glob("*.py") if p.name != "test_architecture.py"]
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"citations of files outside the repository: {found}"


def test_the_layer_contract_is_kept():
    lint_imports = shutil.which("lint-imports")
    if lint_imports is None:
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' installs import-linter")
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout
