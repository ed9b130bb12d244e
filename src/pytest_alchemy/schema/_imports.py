"""The project's own modules that some Python files import, found without importing
anything: imports read with :mod:`ast`, resolved with :class:`importlib.machinery.PathFinder`
on a search path (as the import system would, for modules not imported yet).

"Own" means a Python source file outside the standard library and outside any
``site-packages`` / ``dist-packages`` directory (an editable install of the project is
own). Imports made by name at run time (``importlib.import_module(...)``) are not seen.
"""

from __future__ import annotations

import ast
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

_THIRD_PARTY_DIRS = {"site-packages", "dist-packages"}


def own_sources(
    files: Iterable[Path], search_path: Sequence[str], *, package: str | None = None
) -> list[bytes]:
    """Name and source of every module :func:`own_imports` finds, in order, for a
    fingerprint."""
    parts: list[bytes] = []
    for name, path in own_imports(files, search_path, package=package).items():
        parts.extend([name.encode(), path.read_bytes()])
    return parts


def own_imports(
    files: Iterable[Path], search_path: Sequence[str], *, package: str | None = None
) -> dict[str, Path]:
    """Module name -> source file of every own module that ``files`` import, directly or
    through other own modules (parent packages included: importing ``a.b`` runs
    ``a/__init__.py``). ``package`` is the package ``files`` belong to, for their
    relative imports (``None``: scripts, such as env.py)."""
    finder = _Finder(search_path)
    found: dict[str, Path] = {}
    pending: list[tuple[Path, str | None]] = [(path, package) for path in files]
    while pending:
        path, package = pending.pop()
        for name in _imported_names(path, package):
            for candidate in _with_parents(name):
                if candidate in found:
                    continue
                origin = finder.own_source(candidate)
                if origin is not None:
                    found[candidate] = origin
                    is_package = origin.name == "__init__.py"
                    parent = candidate if is_package else candidate.rpartition(".")[0]
                    pending.append((origin, parent or None))
    return dict(sorted(found.items()))


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _imported_names(path: Path, package: str | None) -> list[str]:
    """Absolute names of the modules ``path`` imports; for ``from a import b`` both ``a``
    and ``a.b`` (which may be a submodule)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []  # a file that cannot be read is its importer's problem, told on import
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is None:
                continue
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _absolute(module: str | None, level: int, package: str | None) -> str | None:
    if level == 0:
        return module
    if package is None:
        return None
    parts = package.split(".")
    if level - 1 > len(parts) - 1:
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if module else base


class _Finder:
    """Finds modules' source files the way the import system would, without importing."""

    def __init__(self, search_path: Sequence[str]) -> None:
        self.search_path = [str(p) for p in search_path]
        self.specs: dict[str, ModuleSpec | None] = {}
        paths = sysconfig.get_paths()
        self.stdlib = [Path(paths[k]).resolve() for k in ("stdlib", "platstdlib") if k in paths]

    def spec(self, name: str) -> ModuleSpec | None:
        if name in self.specs:
            return self.specs[name]
        spec: ModuleSpec | None = None
        top = name.partition(".")[0]
        loaded = sys.modules.get(name)
        if loaded is not None:  # imported already: that module is the one env.py gets
            spec = getattr(loaded, "__spec__", None)
        elif top in sys.builtin_module_names or top in getattr(sys, "stdlib_module_names", ()):
            spec = None
        elif "." not in name:
            spec = _find(name, self.search_path)
        else:
            parent = self.spec(name.rpartition(".")[0])
            locations = parent.submodule_search_locations if parent is not None else None
            if locations is not None:
                spec = _find(name, list(locations))
        self.specs[name] = spec
        return spec

    def own_source(self, name: str) -> Path | None:
        spec = self.spec(name)
        origin = getattr(spec, "origin", None)
        if not origin or not str(origin).endswith(".py"):
            return None
        path = Path(origin)
        resolved = path.resolve()
        if _THIRD_PARTY_DIRS & set(resolved.parts):
            return None
        if any(resolved.is_relative_to(stdlib) for stdlib in self.stdlib):
            return None
        return path if path.is_file() else None


def _find(name: str, path: list[str]) -> ModuleSpec | None:
    try:
        return PathFinder.find_spec(name, path)
    except (ImportError, ValueError, OSError):
        return None
