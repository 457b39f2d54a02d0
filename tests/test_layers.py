"""The imports run one way: the domain (``voicelake``) and the tables (``schemas``) know nothing of
Beam or of the layers above them, ``transforms`` knows nothing of ``pipeline`` or ``runners``, and
the domain's sub-packages import only what their ``__init__`` allows."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> import prefixes it must never use
FORBIDDEN = {
    "voicelake": ("apache_beam", "transforms", "pipeline", "runners"),
    "schemas": ("apache_beam", "transforms", "pipeline", "runners"),
    "transforms": ("pipeline", "runners"),
    "voicelake.records": ("voicelake.media", "voicelake.analysis", "voicelake.export"),
    "voicelake.media": ("voicelake.records", "voicelake.analysis", "voicelake.export"),
    "voicelake.analysis": ("voicelake.records", "voicelake.export"),
    "voicelake.export": ("voicelake.records", "voicelake.media"),
}
# the shared modules at the top of the domain sit below every sub-package
SHARED = ("voicelake.model", "voicelake.layout", "voicelake.storage", "voicelake.audio",
          "voicelake.progress", "voicelake.plots")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports at run time, at any depth (function-level imports too); those
    under ``if TYPE_CHECKING:`` never run, so they are not arrows."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test).endswith("TYPE_CHECKING")
                   for stmt in block.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for top in ("voicelake", "schemas", "transforms"):
        for path in sorted((root / top).rglob("*.py")):
            mod = module_name(root, path)
            rules = [bad for pkg, banned in FORBIDDEN.items() if within(mod, pkg) for bad in banned]
            for lineno, name in imports(path):
                for bad in rules:
                    if within(name, bad):
                        found.append(f"{path.relative_to(root)}:{lineno} imports {name}")
            if mod in SHARED:
                found += [f"{path.relative_to(root)}:{lineno} imports {name} (a shared module "
                          "must not import a sub-package)"
                          for lineno, name in imports(path)
                          if any(within(name, f"voicelake.{sub}")
                                 for sub in ("records", "media", "analysis", "export"))]
    return sorted(set(found))


def test_no_import_runs_back_up_the_layers():
    assert violations() == []


@pytest.mark.parametrize("source, expected", [
    ("import apache_beam as beam\n", [(1, "apache_beam")]),
    ("def f():\n    from pipeline.run import run\n", [(2, "pipeline.run"), (2, "pipeline.run.run")]),
    ("from . import sibling\n", []),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pipeline\n",
     [(1, "typing"), (1, "typing.TYPE_CHECKING")]),
])
def test_the_walk_sees_every_kind_of_import(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert imports(path) == expected


def test_the_walk_would_catch_a_domain_module_importing_beam_or_a_sibling_above_it(tmp_path):
    media = tmp_path / "voicelake" / "media"
    media.mkdir(parents=True)
    (media / "bad.py").write_text("import apache_beam\nfrom voicelake.export import lake\n")
    assert violations(tmp_path) == ["voicelake/media/bad.py:1 imports apache_beam",
                                    "voicelake/media/bad.py:2 imports voicelake.export",
                                    "voicelake/media/bad.py:2 imports voicelake.export.lake"]
