"""The shape of the house: imports go one way, nothing patches another package, every module
imports alone, the CLI is whole without installing the package, and each module has its tests."""

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("feedback_nlp", "training", "serve")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module ``name`` imports, at the top or inside a function."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports pkg.mod when that is a module, else a name of pkg.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` where only a.b is ours
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_the_project_s_modules():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the project
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    graph["feedback_nlp.errors"] = graph["feedback_nlp.errors"] | {"feedback_nlp.classifier"}  # errors -> ... -> errors
    assert any("feedback_nlp.errors" in c and "feedback_nlp.classifier" in c for c in cycles(graph))


def test_the_library_imports_neither_training_nor_serve_except_the_cli_that_assembles_them():
    graph = import_graph()
    upward = {(a, b) for a, targets in graph.items() if a.startswith("feedback_nlp")
              for b in targets if b.startswith(("training", "serve"))}
    assert upward == set()
    assert "fastapi" not in (ROOT / "feedback_nlp" / "cli.py").read_text()


def _patches(path: Path) -> list[str]:
    """Writes into sys.modules, and assignments to another object's private attributes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "sys.modules":
                found.append(f"{path.name}:{node.lineno} {ast.unparse(target)}")
            if (isinstance(target, ast.Attribute) and target.attr.startswith("_") and not target.attr.startswith("__")
                    and not (isinstance(target.value, ast.Name) and target.value.id in ("self", "cls"))):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(target)}")
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.modules.update", "sys.modules.setdefault"):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node.func)}")
    return found


def test_nothing_patches_another_package():
    found = [hit for path in project_modules().values() for hit in _patches(path)]
    assert found == []


def test_the_patch_finder_finds_patches(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import sys\nsys.modules['torch'] = None\nuse._sp = 1\nself._ok = 2\nsys.modules.update({})\n")
    assert [hit.split()[1] for hit in _patches(sample)] == ["sys.modules['torch']", "use._sp", "sys.modules.update"]


def test_every_module_imports_alone():
    names = [n for n in project_modules() if not n.endswith("__main__")]

    def load(name):
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT)
        return name, done.returncode, done.stderr[-800:]

    with ThreadPoolExecutor(2) as pool:
        failed = [(n, err) for n, code, err in pool.map(load, names) if code != 0]
    assert failed == []


def test_python_m_feedback_nlp_has_every_command_in_a_plain_checkout(tmp_path):
    """Without `pip install`: the CLI registers the project's own commands, not through entry points."""
    import shutil

    checkout = tmp_path / "checkout"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, checkout / package, ignore=shutil.ignore_patterns("data", "__pycache__", "static"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run([sys.executable, "-m", "feedback_nlp", "--help"], capture_output=True, text=True, cwd=checkout,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    for command in ("classify", "upgrade", "report", "train", "evaluate", "promote", "serve"):
        assert f" {command} " in done.stdout, command
    imported = subprocess.run([sys.executable, "-c", "import training.cli, serve.cli"], capture_output=True, text=True,
                              cwd=checkout, env=env)
    assert imported.returncode == 0, imported.stderr[-2000:]


@pytest.mark.parametrize("module", ["encoders", "heads", "artifacts", "registry", "classifier", "runtime", "results", "upgrade",
                                    "text", "languages", "router", "batch", "data", "report", "topics", "export", "files"])
def test_each_module_has_its_test_file(module):
    assert (ROOT / "tests" / f"test_{module}.py").is_file()
