"""``--help`` that tells the truth (issue 14).

Typer renders help through Rich markup, which swallows anything that looks like a tag:
"[default: index.sqlite in the user data folder]" vanished, and "pip install
'phototag[ray]'" lost its extra. It also shows Python types ("<list[Path]>") and parameter
names in braces ("{paths}"). :class:`Command` fixes each on every command it is given to
(see app.py), so the help strings themselves stay plain text.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperArgument, TyperCommand

# What Rich takes for a markup tag: "[" then a letter, '#', '/' or '@' (rich.markup.RE_TAGS).
_TAG = re.compile(r"(\\*)(\[[a-zA-Z#/@][^[]*?\])")
_LIST_TYPE = re.compile(r"list\[(\w+)\]")


def escape_markup(text: str) -> str:
    """``text`` with every would-be Rich tag escaped, so it prints as written."""
    return _TAG.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)


def _rich_markup() -> bool:
    from typer import core

    return bool(getattr(core, "HAS_RICH", False)) and core.DEFAULT_MARKUP_MODE == "rich"


class Command(TyperCommand):
    """A Typer command whose help shows defaults, extras and names as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rich = _rich_markup()
        if rich and self.help:
            self.help = escape_markup(self.help)
        for p in self.params:
            if rich and getattr(p, "help", None):
                p.help = escape_markup(p.help)  # type: ignore[attr-defined]
            if isinstance(p, TyperArgument):
                _name_argument(p)
            elif hasattr(p, "display_type_rich"):
                _plain_list_type(p)


def _name_argument(p: TyperArgument) -> None:
    """Arguments shown as PATHS... in usage and in the table, without a Python type."""
    assert p.name is not None
    name = p.metavar or p.name.upper()
    many = p.nargs != 1
    p.metavar = name + ("..." if many and not name.endswith("...") else "")
    usage = p.metavar if p.required else f"[{p.metavar}]"
    p._usage_display_name = lambda: usage  # type: ignore[method-assign]
    p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]


def _plain_list_type(p: Any) -> None:
    """``<list[str]>`` -> ``<str>``: a repeatable option takes one value each time; a flag
    (``<bool>``) shows no type, as it takes no value."""
    shown = p.display_type_rich

    def display(ctx: Any) -> str | None:
        text = shown(ctx)
        if text is None or text == "<bool>":  # a flag takes no value: nothing to show
            return None
        return _LIST_TYPE.sub(lambda m: m.group(1).lower(), str(text))

    p.display_type_rich = display


def use_everywhere(app: Any) -> None:
    """Give :class:`Command` to every command of a Typer app and its sub-apps."""
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:  # not one a command chose itself
            info.cls = Command
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_everywhere(group.typer_instance)
