"""Real Ray nodes for the cluster tests: `ray start --block` processes on this machine.

Each node runs in a session of its own, so that stopping it (or killing it, to test node
loss) reaches exactly its processes and no other Ray instance of the machine. Every node has a
temp dir of its own, the head free ports; token authentication is on, with a token file made
for the cluster (the way `ray start` finds a token, as on a real cluster).

What several nodes on one machine need to behave like nodes of a real cluster:
- a temp dir of its own for every node (a node joining the head takes the head's otherwise):
  each node's runtime-env agent unpacks a job's working dir into its temp dir, replacing what is
  there, so with one folder for both, the worker node deletes the folder a `ray job submit`
  driver on the head runs in;
- short temp dirs: the dashboard's modules listen on Unix sockets under it, and a socket path
  over 107 bytes makes the longest-named module (MetricsHead) fail, the dashboard with it;
- every node's dashboard agent on a port of its own (Ray's default, 52365, is taken by whichever
  Ray instance of the machine started first; an agent that cannot bind it serves no jobs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from runners.compat import new_ray_auth_token
from tests.support.cli import free_port

RAY = str(Path(sys.executable).parent / "ray")
# The longest socket path Ray makes under its temp dir: <temp>/session_<date>_<usec>_<pid>/
# sockets/dash_MetricsHead, 68 bytes past the temp dir (7-digit pid); Linux allows 107.
_SOCKET_SUFFIX_BYTES = 68
_SOCKET_PATH_MAX = 107


def cluster_env(token_file: Path, *, auth_mode: str | None) -> dict[str, str]:
    """The environment of a node or driver: the cluster's token file, RAY_AUTH_MODE as given
    (None: unset, as a user who never heard of it would have it), and this Python's scripts
    (`selab`, `ray`) on PATH, as on a node where selab is installed."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS", "RAY_AUTH_TOKEN")
    }
    env["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    env["PATH"] = os.pathsep.join([str(Path(RAY).parent), env.get("PATH", "")])
    if auth_mode is not None:
        env["RAY_AUTH_MODE"] = auth_mode
    return env


def short_temp_dir() -> Path:
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-"))
    if len(str(temp_dir)) + _SOCKET_SUFFIX_BYTES > _SOCKET_PATH_MAX:
        temp_dir.rmdir()
        raise RuntimeError(
            f"temp dir {temp_dir} is too long for Ray's Unix sockets; set TMPDIR to a short folder"
        )
    return temp_dir


@dataclass
class RayNode:
    process: subprocess.Popen
    log: Path
    temp_dir: Path

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
        """SIGTERM to `ray start --block` alone: it drains the node through the GCS and stops its
        processes (a GCS signalled at the same time cannot answer, and the drain waits 30 s);
        then SIGKILL to whatever outlived it (workers it started)."""
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        self.kill(signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class LocalCluster:
    folder: Path
    token_file: Path
    port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    @property
    def dashboard_address(self) -> str:
        """Where `ray job submit --address` finds the head (its dashboard)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start_head(self, dashboard: bool = False) -> RayNode:
        """The head; with `dashboard`, what job submission needs (ray[default] installed)."""
        web = (
            ["--include-dashboard", "true", "--dashboard-port", str(self.dashboard_port)]
            if dashboard
            else ["--include-dashboard", "false"]
        )
        return self._start(
            [
                "--head",
                "--port",
                str(self.port),
                "--ray-client-server-port",
                str(self.client_port),
                *web,
            ],
            # The head finds the token file and turns token authentication on by itself.
            auth_mode=None,
        )

    def start_worker(self) -> RayNode:
        # A node joining with --address needs the one documented line: RAY_AUTH_MODE=token.
        return self._start(["--address", self.address], auth_mode="token")

    def _start(self, args: list[str], auth_mode: str | None) -> RayNode:
        log = self.folder / f"node{len(self.nodes)}.log"
        temp_dir = short_temp_dir()
        # Port 0: the agent binds a free port and tells the cluster which.
        command = [
            RAY,
            "start",
            "--block",
            "--num-cpus",
            "1",
            "--object-store-memory",
            str(200 * 1024**2),
            "--disable-usage-stats",
            "--temp-dir",
            str(temp_dir),
            "--dashboard-agent-listen-port",
            "0",
            *args,
        ]
        with log.open("w") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=cluster_env(self.token_file, auth_mode=auth_mode),
            )
        node = RayNode(process, log, temp_dir)
        self.nodes.append(node)
        node.wait_started()
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def make_token(folder: Path) -> Path:
    token_file = folder / "auth_token"
    token_file.write_text(new_ray_auth_token())
    return token_file
