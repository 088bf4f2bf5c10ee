"""Local processes for tests and benches: a free loopback port, a real Prometheus, a clean stop.

Shared by tests/controller/conftest.py (the session fixture) and bench/controller_scale.py.
Prometheus listens on 127.0.0.1 only (its default binds all interfaces: never use that).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def start_prometheus(binary: str, home: Path, port: int) -> subprocess.Popen[bytes]:
    """Prometheus with `home/prometheus.yml`, its data in `home/data`, its log in `home`."""
    with (home / "prometheus.log").open("wb") as log:
        return subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",  # never all interfaces
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
