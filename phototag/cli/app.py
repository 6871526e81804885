"""The ``phototag`` command. Importing this module must stay cheap: ``--help`` is instant."""

from __future__ import annotations

import typer

from .album import album_command
from .catalog import app as catalog_app
from .check import check_command
from .classify import classify_command
from .doctor import doctor_command
from .failures import failures_command
from .help import use_everywhere
from .models import app as models_app
from .people import app as people_app
from .recognizers import app as recognizers_app
from .scan import scan_command
from .search import search_command
from .serve import serve_command
from .show import forget_command, show_command, tags_command
from .similar import duplicates_command, similar_command
from .train import retag_command, tag_command, train_command
from .write import clean_command, write_command

app = typer.Typer(
    name="phototag",
    help="Tag local photo libraries with deep-learning image recognition.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("scan")(scan_command)
app.command("classify")(classify_command)
app.command("show")(show_command)
app.command("tags")(tags_command)
app.command("album")(album_command)
app.command("similar")(similar_command)
app.command("search")(search_command)
app.command("duplicates")(duplicates_command)
app.command("train")(train_command)
app.command("retag")(retag_command)
app.command("tag")(tag_command)
app.command("write")(write_command)
app.command("clean")(clean_command)
app.command("forget")(forget_command)
app.command("doctor")(doctor_command)
app.command("failures")(failures_command)
app.command("check")(check_command)
app.command("serve")(serve_command)
app.add_typer(models_app, name="models")
app.add_typer(people_app, name="people")
app.add_typer(recognizers_app, name="recognizers")
app.add_typer(catalog_app, name="catalog")
use_everywhere(app)  # --help shows defaults, extras and names as written (issue 14)


def version_callback(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"phototag {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
    lang: str | None = typer.Option(
        None,
        "--lang",
        envvar="PHOTOTAG_LANG",
        help="Write keywords and album names, and show tags, in this language: en or ja "
        "[default: the config's write.language, else en].",
        show_default=False,
    ),
) -> None:
    """Tag local photo libraries with deep-learning image recognition."""
    from .options import chosen_language

    if lang is not None:
        from ..errors import ConfigError
        from ..names import tag_names

        try:
            tag_names(lang)
        except ConfigError as e:
            raise typer.BadParameter(str(e), param_hint="'--lang'") from None
    chosen_language[0] = lang


def main() -> None:
    """The console script. An exception no command turned into a message is a bug; the
    user still gets one line and exit code 3, not a traceback (PHOTOTAG_DEBUG=1 shows it)."""
    import os
    import sys

    from .console import ExitCode, install_signal_handlers

    install_signal_handlers()
    try:
        app(prog_name="phototag")
    except Exception as e:
        if os.environ.get("PHOTOTAG_DEBUG"):
            raise
        why = str(e).splitlines()[0] if str(e) else ""
        print(f"error: internal error ({type(e).__name__}{': ' + why if why else ''}); this is "
              "a bug in phototag: please report it with the output of PHOTOTAG_DEBUG=1",
              file=sys.stderr)  # fmt: skip
        sys.exit(ExitCode.ERROR)
