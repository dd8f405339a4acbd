"""The typed public surface: ``py.typed`` ships, and public functions carry type hints."""

import ast
from pathlib import Path

import pytest

import reparam

ROOT = Path(reparam.__file__).parent


def _files():
    """Every module of the package, recursively."""
    return sorted(ROOT.rglob("*.py"))


def _unannotated(tree: ast.AST, prefix: str = "") -> list[str]:
    out = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            out += _unannotated(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.FunctionDef) and (
                not node.name.startswith("_") or node.name in ("__init__", "__call__")):
            a = node.args
            args = a.posonlyargs + a.args + a.kwonlyargs
            if prefix and args and args[0].arg in ("self", "cls"):
                args = args[1:]
            args += [v for v in (a.vararg, a.kwarg) if v is not None]
            missing = [x.arg for x in args if x.annotation is None]
            if node.returns is None and node.name != "__init__":
                missing.append("return")
            if missing:
                out.append(f"{prefix}{node.name}: {', '.join(missing)}")
    return out


def test_py_typed_marker():
    assert (ROOT / "py.typed").is_file()


@pytest.mark.parametrize("path", list(_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_public_functions_are_annotated(path):
    assert _unannotated(ast.parse(path.read_text())) == []


def test_the_checker_sees_a_missing_hint():
    tree = ast.parse("def f(x, y: int) -> int: ...\nclass A:\n    def g(self): ...\n"
                     "def _private(x): ...\n")
    assert _unannotated(tree) == ["f: x", "A.g: return"]
