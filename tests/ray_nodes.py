"""Real Ray nodes for the cluster tests: `ray start --block` processes on this machine.

Each node runs in a session of its own, so that stopping it (or killing it, to test node
loss) reaches exactly its processes and no other Ray instance of the machine. The head uses a
temp dir of its own and free ports; token authentication is on, with a token file made for the
cluster (the way `ray start` finds a token, as on a real cluster).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_env(token_file: Path, *, auth_mode: str | None) -> dict[str, str]:
    """The environment of a node or driver: the cluster's token file, RAY_AUTH_MODE as given
    (None: unset, as a user who never heard of it would have it)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    if auth_mode is not None:
        env["RAY_AUTH_MODE"] = auth_mode
    return env


@dataclass
class RayNode:
    process: subprocess.Popen
    log: Path

    def wait_started(self, limit_s: float = 90) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            text = self.log.read_text() if self.log.exists() else ""
            if "Ray runtime started" in text:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError(f"Ray node did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process of the node (its own session), then reap `ray start`."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM
        time.sleep(1)
        self.kill(signal.SIGKILL)  # and whatever outlived it (workers it started)


@dataclass
class LocalCluster:
    folder: Path
    token_file: Path
    port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def start_head(self) -> RayNode:
        return self._start(
            ["--head", "--port", str(self.port), "--ray-client-server-port",
             str(self.client_port), "--include-dashboard", "false", "--temp-dir",
             str(self.folder / "ray")],
            # The head finds the token file and turns token authentication on by itself.
            auth_mode=None,
        )

    def start_worker(self) -> RayNode:
        # A node joining with --address needs the one documented line: RAY_AUTH_MODE=token.
        return self._start(["--address", self.address], auth_mode="token")

    def _start(self, args: list[str], auth_mode: str | None) -> RayNode:
        log = self.folder / f"node{len(self.nodes)}.log"
        command = [RAY, "start", "--block", "--num-cpus", "1", "--object-store-memory",
                   str(200 * 1024**2), "--disable-usage-stats", *args]
        with log.open("w") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env=cluster_env(self.token_file, auth_mode=auth_mode),
            )
        node = RayNode(process, log)
        self.nodes.append(node)
        node.wait_started()
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def make_token(folder: Path) -> Path:
    from ray._private.authentication.authentication_token_generator import (
        generate_new_authentication_token,
    )

    token_file = folder / "auth_token"
    token_file.write_text(generate_new_authentication_token())
    return token_file
