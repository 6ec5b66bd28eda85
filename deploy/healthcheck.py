"""Container health check for every role of the fishnet image (Docker HEALTHCHECK, Nomad, k8s).

Reads PID 1's command line to know the role: the code server answers a gRPC ping, the webserver
its /server_info page, the daemon shows recent heartbeats. Other roles (migration, run workers)
are healthy while they run. Exit 0 = healthy, 1 = unhealthy. Standard library only.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path


def _pid1_argv() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _option(argv: list[str], names: tuple[str, ...], default: str) -> str:
    for i, arg in enumerate(argv[:-1]):
        if arg in names:
            return argv[i + 1]
    return default


def main() -> int:
    """Run the check that fits the role; print why when unhealthy."""
    argv = _pid1_argv()
    joined = " ".join(argv)
    bin_dir = Path(sys.executable).parent
    if "code-server" in joined or " api grpc" in joined:
        port = _option(argv, ("-p", "--port"), "4000")
        check = [str(bin_dir / "dagster"), "api", "grpc-health-check", "-p", port]
    elif "dagster-webserver" in joined:
        port = _option(argv, ("-p", "--port"), "3000")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=8) as r:
                return 0 if r.status == 200 else 1
        except OSError as error:
            print(f"webserver on port {port}: {error}")
            return 1
    elif "dagster-daemon" in joined:
        check = [str(bin_dir / "dagster-daemon"), "liveness-check"]
    else:
        return 0
    result = subprocess.run(check, capture_output=True, text=True, timeout=25)
    if result.returncode != 0:
        print((result.stdout + result.stderr)[-500:])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
