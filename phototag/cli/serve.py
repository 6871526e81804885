"""phototag serve: the recognition API and the page, over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import Device
from . import options as o
from .console import ExitCode, Output, escape, guarded


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on; any but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8600,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PHOTOTAG_TOKEN",
            help="Bearer token every request must carry (default: none on loopback; "
            "generated and printed for any other address).",
            show_default=False,
        ),
    ] = None,
    model: o.Models = None,
    device: o.Device = Device.AUTO,
    max_upload_mb: Annotated[
        float,
        typer.Option("--max-upload-mb", min=0.001, max=4096.0, help="Largest upload, in MiB."),
    ] = 50.0,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            "--batch-wait-ms",
            min=0.0,
            max=1000.0,
            help="How long a recognition request waits for others to share its inference batch.",
        ),
    ] = 5.0,
    index: o.IndexPath = None,
    config: o.Config = None,
) -> None:
    """Serve the recognition API (POST /v1/recognize, /v1/similar, catalogues, ...) and a page
    to browse and correct the library. OpenAPI description at /docs; see docs/serve.md.

    The index is only read, except for corrections, which wait briefly for a running scan.
    """
    from ..errors import ConfigError, Interrupted
    from ..serve.settings import ServeSettings, is_loopback, new_token

    out = Output()
    with guarded(out):
        import math

        if not (math.isfinite(max_upload_mb) and math.isfinite(batch_wait_ms)):
            raise ConfigError("--max-upload-mb and --batch-wait-ms take finite numbers")
        write = o.write_settings(config)
        import socket

        try:  # an address that cannot be listened on is a usage error, before any token
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise ConfigError(f"cannot listen on {host!r}: {e}") from None
        if not is_loopback(host) and not token:
            token = new_token()
            out.info(f"token (send as 'Authorization: Bearer TOKEN'): [num]{escape(token)}[/]")
        if token is not None and len(token) < 16:
            raise ConfigError("a token needs at least 16 characters")
        settings = ServeSettings(
            host=host, port=port, token=token, index_path=index,
            recognizers=tuple(model or ()), device=device,
            max_upload_bytes=int(max_upload_mb * 2**20), batch_wait=batch_wait_ms / 1000,
            write=write,
        )  # fmt: skip
        import uvicorn

        from ..serve.app import create_app

        shown = f"[{host}]" if ":" in host else host
        out.info(f"serving on http://{shown}:{port}/ (API description at /docs); Ctrl-C stops")
        try:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",
                        timeout_graceful_shutdown=30)  # fmt: skip
        except Interrupted:
            pass  # uvicorn finished the requests in flight, then re-raised the signal
        except (OSError, UnicodeError) as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e}") from None
    raise typer.Exit(ExitCode.OK)
