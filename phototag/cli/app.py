"""The ``phototag`` command. Importing this module must stay cheap: ``--help`` is instant."""

from __future__ import annotations

import typer

from .album import album_command
from .check import check_command
from .classify import classify_command
from .doctor import doctor_command
from .models import app as models_app
from .scan import scan_command
from .search import search_command
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
app.command("check")(check_command)
app.add_typer(models_app, name="models")


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
) -> None:
    """Tag local photo libraries with deep-learning image recognition."""


def main() -> None:
    from .console import install_signal_handlers

    install_signal_handlers()
    app()
