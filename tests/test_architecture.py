"""The package's shape, checked: parts import only lower parts, no import cycle between modules, short functions.

The layers of docs/architecture.md, lowest first. Imports inside functions count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "m2unet"
LAYERS = [
    {"errors", "paths", "system", "paper"},
    {"data"},
    {"models"},
    {"weights"},
    {"export"},
    {"inference"},
    {"evaluation"},
    {"training"},
    {"measure"},
    {"serve"},
    {"cli"},
    {"__main__", "__init__"},  # `python -m m2unet`, and the package's lazy top-level names
]
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports, anywhere in its body (``from .x import y`` counts x.y when
    y is a module, else x)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known]
            candidates = submodules or [module]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known and "." in candidate:
                candidate = candidate.rsplit(".", 1)[0]
            if candidate in known and candidate != name:
                targets.add(candidate)
    return targets


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def layer(module: str) -> int:
    return next(index for index, names in enumerate(LAYERS) if part(module) in names)


def test_every_part_has_a_layer():
    unplaced = sorted({part(m) for m in modules()} - set().union(*LAYERS))
    assert not unplaced, f"parts missing from LAYERS (and from docs/architecture.md): {unplaced}"


def test_parts_import_only_lower_parts():
    upward = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                    if part(a) != part(b) and layer(a) <= layer(b))
    assert not upward, "imports of a part at the same or a higher layer:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_functions_are_short():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
