"""A real ``phototag serve`` on a loopback port, for the server's tests and benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    token: str | None = None

    def client(self, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kw)  # type: ignore[arg-type]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start(env: Mapping[str, str], *args: str, log: Path, token: str | None = None) -> Server:
    """Start ``phototag serve`` and wait until /v1/health answers (it prints nothing to
    wait on; the health endpoint is the observable sign it is up)."""
    port = free_port()
    cmd = [sys.executable, "-m", "phototag", "serve", "--port", str(port), *args]
    if token:
        cmd += ["--token", token]
    with open(log, "wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log, token)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"phototag serve exited {proc.returncode}: {log.read_text()}")
        try:
            with server.client() as c:
                if c.get("/v1/health").status_code == 200:
                    return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"phototag serve did not come up: {log.read_text()}")
