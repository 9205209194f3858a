"""The package's layers: every import points down, none back up.

Foundations (the modules at the top of ``trm``) import only other foundations; each
stage package imports foundations and the packages before it in :data:`STAGES`, never a
later one; the command line (``trm.cli``) sits on top of all. So the import graph has
no cycle and no back-arrow, and a stage can be read without the ones after it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trm

SOURCE = Path(trm.__file__).parent
#: Stage packages, each allowed to import the ones before it.
STAGES = ("io", "search", "synth", "model", "graph", "train", "denovo", "casanovo", "compare")
FOUNDATIONS = tuple(
    p.stem for p in SOURCE.glob("*.py") if p.stem not in ("__init__", "__main__", "cli")
)


def _unit(module: str) -> str | None:
    """The layer of a module name under ``trm`` (``trm.denovo.decode`` -> ``denovo``)."""
    parts = module.split(".")
    if parts[0] != "trm" or len(parts) == 1:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trm"):
            if node.module == "trm":
                found |= {f"trm.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("trm")}
    return found


def test_every_import_points_down():
    allowed = {name: set(FOUNDATIONS) | set(STAGES[:i]) for i, name in enumerate(STAGES)}
    problems = []
    for path in SOURCE.rglob("*.py"):
        relative = path.relative_to(SOURCE)
        if relative.parts[0] in ("cli.py", "__main__.py", "__init__.py"):
            continue
        layer = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        for target in map(_unit, _imports(path)):
            if target is None or target == layer or target == "__version__":
                continue
            if layer in FOUNDATIONS and target not in FOUNDATIONS:
                problems.append(f"foundation {relative} imports the stage package {target}")
            elif layer in allowed and target not in allowed[layer]:
                problems.append(f"{relative} ({layer}) imports {target}, a later stage")
    assert not problems, "\n".join(problems)


def test_foundations_import_each_other_without_cycles():
    graph = {
        name: {
            t for t in map(_unit, _imports(SOURCE / f"{name}.py")) if t in FOUNDATIONS and t != name
        }
        for name in FOUNDATIONS
    }
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, f"import cycle: {' -> '.join((*trail, name))}"
        if name in done:
            return
        for target in graph[name]:
            visit(target, (*trail, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_every_package_is_a_stage():
    packages = {p.name for p in SOURCE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(STAGES)
