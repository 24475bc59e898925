"""Dependencies point one way, and nothing imports itself back through others.

Every import statement counts, including those inside functions and under TYPE_CHECKING: a
late import hides a cycle from the interpreter, not from a reader. The layers, bottom up:

- the shared leaf, ``bot.errors`` and ``bot.core``: imports nothing else of the project;
- ``retrieval``, ``connectors`` and ``finetune``: themselves and the leaf, and ``finetune`` also
  ``retrieval`` (it trains on retrieved answers);
- the rest of ``bot``: anything.

Inside a package, no two modules or subpackages side by side may depend on each other, even
through others (``bot.api.agent -> bot.review -> bot.services -> bot.api.sse`` is a cycle
between ``bot.api`` and ``bot.review``), as import-linter's ``acyclic_siblings`` contract has it.
An AST walk rather than import-linter: no dependency to lock, and it runs in a second.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "retrieval", "connectors", "finetune")
LEAF = "the shared leaf (bot.errors, bot.core)"
MAY_IMPORT = {
    LEAF: {LEAF},
    "retrieval": {"retrieval", LEAF},
    "connectors": {"connectors", LEAF},
    "finetune": {"finetune", "retrieval", LEAF},
    "bot": {"bot", "retrieval", "connectors", "finetune", LEAF},
}


def layer(module: str) -> str:
    if module == "bot.errors" or module == "bot.core" or module.startswith("bot.core."):
        return LEAF
    return module.partition(".")[0]


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def project_modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every module of the four packages under ``root``."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, modules: dict[str, Path], root: Path) -> Iterator[Import]:
    """The project modules ``module`` imports, from any depth of its syntax tree."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from pkg import name` imports the submodule pkg.name when there is one.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            target = _known(name, modules)
            if target is not None and target != module:
                yield Import(module, target, f"{path.relative_to(root)}:{node.lineno}")


def _known(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def all_imports(root: Path) -> list[Import]:
    modules = project_modules(root)
    found = {i: None for m, p in modules.items() for i in imports_of(m, p, modules, root)}
    return list(found)


def wrong_way(imports: list[Import]) -> list[Import]:
    return [i for i in imports if layer(i.imported) not in MAY_IMPORT[layer(i.importer)]]


@dataclass(frozen=True)
class Dependency:
    """``source`` needs ``target``: two packages or modules side by side in one package."""

    source: str
    target: str
    because: Import


def dependencies(imports: list[Import]) -> list[Dependency]:
    """Each import as a dependency between the siblings it connects, at every depth.

    ``bot.api.agent`` importing ``bot.review`` makes ``bot.api`` depend on ``bot.review``, so a
    cycle between packages shows even when no two modules import each other. Imports of the
    shared leaf are left out: it imports nothing back (``test_dependencies_point_one_way``).
    """
    found: dict[tuple[str, str], Dependency] = {}
    for i in imports:
        if layer(i.imported) == LEAF:
            continue
        a, b = i.importer.split("."), i.imported.split(".")
        common = 0
        while common < min(len(a), len(b)) and a[common] == b[common]:
            common += 1
        if common in (len(a), len(b)):
            continue  # a package and its own module: not siblings
        key = (".".join(a[: common + 1]), ".".join(b[: common + 1]))
        found.setdefault(key, Dependency(*key, i))
    return list(found.values())


def cycles(imports: list[Import]) -> list[list[Dependency]]:
    """One cycle through each group of siblings that depend on each other (Tarjan's SCCs)."""
    edges: dict[str, dict[str, Dependency]] = {}
    for d in dependencies(imports):
        edges.setdefault(d.source, {})[d.target] = d
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for start in sorted(edges):
        if start in index:
            continue
        # Iterative depth-first search, so a long import chain cannot hit the recursion limit.
        enter(start)
        work = [(start, iter(sorted(edges.get(start, {}))))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    enter(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return [_cycle_in(min(group), group, edges) for group in groups]


def _cycle_in(
    start: str, group: set[str], edges: dict[str, dict[str, Dependency]]
) -> list[Dependency]:
    """The shortest way from ``start`` back to itself inside ``group`` (breadth first)."""
    came_by: dict[str, Dependency] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target, edge in sorted(edges.get(node, {}).items()):
                if target not in group or target in came_by:
                    continue
                came_by[target] = edge
                if target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came_by[path[0].source])
                    return path
                following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_dependencies_point_one_way() -> None:
    found = wrong_way(all_imports(ROOT))
    assert not found, "imports against the layers (see this file's docstring):\n" + "\n".join(
        f"  {i}  ({layer(i.importer)} may not import {layer(i.imported)})" for i in found
    )


def test_no_import_cycles() -> None:
    found = cycles(all_imports(ROOT))
    assert not found, "packages or modules that import each other, hidden or not:\n" + "\n".join(
        " -> ".join([c[0].source, *(d.target for d in c)])
        + "".join(f"\n    {d.because}" for d in c)
        for c in found
    )


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "bot/settings.py": "from retrieval.index import KnowledgeIndex\n",
            "bot/core/__init__.py": "",
            "bot/core/hardware.py": "from bot.errors import ModelError\n",
            "bot/errors.py": "",
            "retrieval/index.py": (
                "from bot.core import hardware\n"
                "def load():\n"
                "    from bot.settings import Settings\n"
            ),
            "bot/core/bundled.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from bot.settings import Settings\n"
            ),
            "finetune/train.py": "from retrieval import index\nfrom . import data\n",
            "finetune/data.py": "import finetune.train\n",
            "bot/api/__init__.py": "",
            "bot/api/agent.py": "from bot.review import approve\n",
            "bot/api/common.py": "",
            "bot/review.py": "from bot.api.common import services\n",
        },
    )
    imports = all_imports(root)
    assert [str(i) for i in wrong_way(imports)] == [
        "bot/core/bundled.py:3: bot.core.bundled imports bot.settings",
        "retrieval/index.py:3: retrieval.index imports bot.settings",
    ]
    found = {frozenset(d.source for d in cycle) for cycle in cycles(imports)}
    assert found == {
        frozenset({"bot", "retrieval"}),  # bot.settings <-> retrieval.index
        frozenset({"finetune.train", "finetune.data"}),
        frozenset({"bot.api", "bot.review"}),  # no two modules import each other
    }
