"""The shape of the package (docs/architecture.md): commands alone at the top of jaxgan/, imports of
jaxgan's own modules at module top, and no citation of notes outside the repository. The layering
itself (a layer imports only the layers under it) is import-linter's contract in pyproject.toml,
which CI runs as `lint-imports`; `test_the_layer_contract_is_kept` runs it here too."""

from __future__ import annotations

import ast
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxgan"
COMMANDS = {"main", "evaluate", "translate", "interpolate", "bench", "chaos", "transfer_convert"}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_top_of_the_package_holds_only_commands():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top == COMMANDS, f"not a command at the top of jaxgan/: {sorted(top - COMMANDS)}"
    for name in sorted(COMMANDS):
        source = (PACKAGE / f"{name}.py").read_text()
        assert 'if __name__ == "__main__":' in source, f"jaxgan/{name}.py runs nothing"


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
    for folder in ("configs", "tests", "scripts", "benchmarks"):
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
