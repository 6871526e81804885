"""Every error the library raises on purpose. The CLI maps them to messages and exit codes."""

from __future__ import annotations

from typing import Self


class PhototagError(Exception):
    """Base class: something the user can act on, with a message that says what.

    The library's messages never name a command-line flag (the library has other clients,
    such as ``serve``); a client that knows its own options adds them with :meth:`with_hint`.
    """

    hint: str | None = None

    def with_hint(self, hint: str) -> Self:
        """This error, with what to do about it in the client's own words (its flags)."""
        self.hint = hint
        return self

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}: {self.hint}" if self.hint else text


class ConfigError(PhototagError):
    """Bad options or configuration (the CLI treats it as a usage error)."""


class ModelError(PhototagError):
    """A model file or manifest is missing, damaged or does not fit its description."""


class UnknownModelError(ModelError, ConfigError):
    """A backbone or recognizer name that is not installed."""


class DeviceError(PhototagError):
    """The requested execution device cannot be used."""


class IndexFileError(PhototagError):
    """The index cannot be opened or used (not a database, newer schema, read-only, ...)."""


class ImageError(PhototagError):
    """One file could not be read as an image. Scans record it and go on."""


class UnreadableFile(ImageError):
    """The file may not be read (its mode, its owner): a failure recorded like broken
    content, so an unchanged file is not an error again every night; a scan reads it again
    once it is readable (a ``chmod`` changes no mtime)."""


class MetadataError(PhototagError):
    """Keywords could not be read from or written to one file. Writes record it and go on."""


class LockedError(PhototagError):
    """Another phototag process is writing the index."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: stop after rolling back the batch in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class PersonError(ConfigError):
    """An unknown person or face, or a name that cannot be used (the CLI: a usage error)."""
