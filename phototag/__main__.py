"""``python -m phototag``: the same as the ``phototag`` command."""

from .cli.app import main

main()
