"""Flower's Deployment Runtime on loopback: one `flower-superlink` and N `flower-supernode` processes on free
127.0.0.1 ports, each with its own Flower home, no telemetry, no update check and no dependency installation; the
app descriptor written from the settings; a run started with `flwr run` and watched through its result file.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from app.federate.server_app import PROGRESS_FILE, RESULT_FILE
from app.federate.settings import FederationSettings

HOST = "127.0.0.1"
SERVER_APP = "app.federate.server_app:app"
STRAGGLER_WAIT_S = 5.0  # how long `close` waits for the app processes it killed to be gone
CLIENT_APP = "app.federate.client_app:app"
QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
         "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}


class FederationError(RuntimeError):
    pass


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on the loopback address (all held at once while picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_app(folder: Path, settings: FederationSettings, client_app: str = CLIENT_APP) -> Path:
    """The Flower app descriptor: no code, its components are modules of the installed package."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "pocketkb-federation"\nversion = "1.0.0"\n\n'
        '[tool.flwr.app]\npublisher = "pocketkb"\n\n'
        f'[tool.flwr.app.components]\nserverapp = "{SERVER_APP}"\nclientapp = "{client_app}"\n\n'
        f'[tool.flwr.app.config]\n{settings.run_config_toml()}', encoding="utf-8")
    return folder


class Federation:
    """The daemons of one federation, started in `__enter__` and stopped (with every child) in `__exit__`.

    `devices` are node configs, one per SuperNode (e.g. {"text": ..., "state": ...}); `root` holds the Flower
    homes and logs (a temporary folder if None).
    """

    def __init__(self, devices: list[dict], root: Path | None = None, client_app: str = CLIENT_APP):
        self.devices, self.client_app = devices, client_app
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="pocketkb-fed-")
        self.root = Path(root or self._tmp.name)
        self.port, *self.node_ports = free_ports(1 + len(devices))
        self.link: subprocess.Popen | None = None
        self.nodes: list[subprocess.Popen] = []
        self.logs: list = []
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, **QUIET, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{name}.log", "wb")
        self.logs.append(log)
        return subprocess.Popen(args, env={**self.env, "FLWR_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def __enter__(self) -> "Federation":
        try:
            self.link = self._start("link", ["flower-superlink", "--insecure",
                                             "--disable-runtime-dependency-installation",
                                             "--host", HOST, "--port", str(self.port)])
            self._wait_healthy()
            for i, (device, port) in enumerate(zip(self.devices, self.node_ports)):
                config = " ".join(f"{k}={json.dumps(v)}" for k, v in device.items())
                self.nodes.append(self._start(f"node{i}", [
                    "flower-supernode", "--insecure", "--superlink", f"{HOST}:{self.port}", "--host", HOST,
                    "--port", str(port), "--node-config", config]))
            cli = self.root / "cli"
            cli.mkdir(exist_ok=True)
            (cli / "config.toml").write_text(f'[superlink]\ndefault = "loop"\n\n[superlink.loop]\n'
                                             f'address = "{HOST}:{self.port}"\ninsecure = true\n')
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wait_healthy(self, seconds: float = 60.0) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.link.poll() is not None:
                raise FederationError(f"flower-superlink exited: see {self.root / 'link.log'}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise FederationError("flower-superlink did not become ready in time")

    def run(self, settings: FederationSettings, timeout: float) -> dict:
        """Start the federation's run and wait for its result file; the progress file's rounds."""
        out = Path(settings.out)
        dead = [i for i, node in enumerate(self.nodes) if node.poll() is not None]
        if dead:
            raise FederationError(f"flower-supernode {dead[0]} exited: see {self.root / f'node{dead[0]}.log'}")
        for name in (RESULT_FILE, PROGRESS_FILE):
            (out / name).unlink(missing_ok=True)
        app_dir = write_app(self.root / "app", settings, self.client_app)
        config = self.root / "run-config.toml"
        config.write_text(settings.run_config_toml(), encoding="utf-8")
        started = self._flwr(["run", str(app_dir), "loop", "--format", "json", "--run-config", str(config)])
        if started.returncode != 0:
            raise FederationError(f"flwr run failed: {started.stdout[-2000:]}{started.stderr[-2000:]}")
        run_id = str(_json_of(started.stdout)["run-id"])
        deadline, checked = time.time() + timeout, time.time()
        while not (out / RESULT_FILE).exists():
            if time.time() > deadline:
                raise FederationError(f"the run did not finish in {timeout:.0f} s")
            if self.link.poll() is not None:
                raise FederationError(f"flower-superlink exited: see {self.root / 'link.log'}")
            if time.time() - checked > 10:  # a server app that died before it could write its result
                checked = time.time()
                self._check_alive(run_id, out)
            time.sleep(0.5)
        result = json.loads((out / RESULT_FILE).read_text())
        if not result.get("done"):
            raise FederationError(f"the server app failed:\n{result.get('error', '')}")
        return json.loads((out / PROGRESS_FILE).read_text())

    def _flwr(self, args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(["flwr", *args], env={**self.env, "FLWR_HOME": str(self.root / "cli")},
                              capture_output=True, text=True, timeout=120)

    def _check_alive(self, run_id: str, out: Path) -> None:
        listed = self._flwr(["ls", "loop", "--run-id", run_id, "--format", "json"])
        try:
            status = _json_of(listed.stdout)["runs"][0]["status"]
        except (ValueError, KeyError, IndexError):
            return
        if status.startswith("finished") and not (out / RESULT_FILE).exists():
            time.sleep(2)  # the result file may be on its way
            if not (out / RESULT_FILE).exists():
                log = self._flwr(["log", run_id, "loop", "--show"]).stdout
                raise FederationError(f"the run ended ({status}) without a result:\n{log[-3000:]}")

    def kill_node(self, index: int) -> None:
        """SIGKILL a SuperNode and everything it started, as a device that vanishes."""
        node = self.nodes[index]
        for pid in [node.pid, *descendants(node.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        node.wait()

    def close(self) -> None:
        procs = [p for p in (*self.nodes, self.link) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _kill_stragglers(str(self.root))
        for log in self.logs:
            log.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def _json_of(output: str) -> dict:
    """The JSON object a `flwr ... --format json` command printed (after any line of its own)."""
    return json.loads(output[output.index("{"):])


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == parent:
                    found.append(int(entry.name))
                    frontier.append(int(entry.name))
    return found


def _kill_stragglers(root: str) -> None:
    """Processes the daemons started in their own sessions (Flower's superexec and app processes): any still
    running with one of our Flower homes is killed, and waited for (a few seconds at most) until it is gone."""
    killed = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _in_home(int(entry.name), root):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STRAGGLER_WAIT_S
    while killed and time.monotonic() < deadline:
        time.sleep(0.05)
        killed = [pid for pid in killed if _in_home(pid, root)]


def _in_home(pid: int, root: str) -> bool:
    """Whether process `pid` runs with one of the Flower homes in `root` (an exited one has no environment)."""
    try:
        return f"FLWR_HOME={root}/".encode() in (Path("/proc") / str(pid) / "environ").read_bytes()
    except OSError:
        return False
