"""The documentation points at things that exist: links between pages, source files and
folders named as paths, and the modules the README's map of the tree names (sqlite-utils'
tests/test_docs.py does the same for its CLI reference)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# A path into the repository ending in a file name with an extension (keyword paths such as
# phototag/animal/cat are not files).
SOURCE = re.compile(
    r"(?<![\w/.-])((?:phototag|tests|bench|scripts|weights|docs)/[\w./-]*\.(?:py|sh|md|toml|json|csv|onnx|txt))\b"
)


def _current(page: Path) -> str:
    """The page, without the CHANGELOG's past releases (they name files as they were then)."""
    text = page.read_text()
    if page.name == "CHANGELOG.md":
        releases = [m.start() for m in re.finditer(r"^## ", text, re.M)]
        text = text[: releases[1]] if len(releases) > 1 else text
    return text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    missing = [
        target
        for target in LINK.findall(page.read_text())
        if "://" not in target and not target.startswith("mailto:")
        and not (page.parent / target).exists()
    ]  # fmt: skip
    assert not missing, f"{page.name} links to pages that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_source_path_named_exists(page: Path) -> None:
    named = set(SOURCE.findall(_current(page)))
    missing = sorted(
        p for p in named
        if not (ROOT / p).exists() and not any(ch in p for ch in "*<>{}")
    )  # fmt: skip
    assert not missing, f"{page.name} names files that do not exist: {missing}"


def test_the_readme_map_names_every_module_and_folder() -> None:
    text = ROOT.joinpath("README.md").read_text()
    layout = text[text.index("## Layout") :]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    package = ROOT / "phototag"
    unnamed = [
        str(p.relative_to(package))
        for p in sorted(package.rglob("*"))
        if "__pycache__" not in p.parts and p.name not in {"__init__.py", "__main__.py"}
        and (p.is_dir() or p.suffix == ".py") and "static" not in p.parts and "weights" not in p.parts
        and p.parent.name != "cli"  # "one small module per command"
        and not re.search(rf"(?<![\w.]){re.escape(p.stem if p.is_file() else p.name)}(\.py|/)", layout)
    ]  # fmt: skip
    assert not unnamed, f"the README's Layout does not name: {unnamed}"


def _library_strings() -> list[tuple[str, int, str]]:
    """Every string literal of the library outside cli/ that is not a docstring."""
    import ast

    out = []
    for path in sorted((ROOT / "phototag").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "phototag").parts:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }  # fmt: skip
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings):  # fmt: skip
                out.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    return out


def test_library_messages_name_no_command_line_flag() -> None:
    """The library has clients besides the CLI (serve): a remedy that is a flag is added by
    the CLI (PhototagError.with_hint), never written into the library's message."""
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+|(?<![\w-])-m [a-z]")
    found = [
        f"{path}:{line}: {text!r:.80}"
        for path, line, text in _library_strings()
        if flag.search(text)
        and not path.endswith("exiftool.py")  # exiftool's own arguments
        and "pip install" not in text
    ]
    assert not found, "library strings naming CLI flags:\n" + "\n".join(found)
