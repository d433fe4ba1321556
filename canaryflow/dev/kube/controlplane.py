"""Start and stop a real Kubernetes control plane on loopback as local processes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which fakes the nodes and
makes scheduled pods Running and Ready, and Ready again after an outage: `stages`) run from the
binaries `tools/kube/build.sh` built. Each runs in its own session, writes its log next to the
state file, and is recorded by pid so that `down` (from any process) can stop it. With
``die_with_parent`` (the test fixture) every process also gets SIGKILL from the kernel when the
process that started it dies, so an interrupted test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from canaryflow.dev.kube import apiclient
from canaryflow.dev.kube.pki import Pki, write_pki
from canaryflow.dev.kube.stages import write_extra_stages
from canaryflow.dev.processes import (
    alive,
    die_with_parent,
    free_port,
    on_lasting_thread,
    stop_groups,
    tail,
    wait_until,
)
from canaryflow.errors import LocalClusterError

__all__ = ["ControlPlane", "LocalControlPlane", "running_control_plane"]

_STATE = "state.json"


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """A running local control plane: where to reach it and which processes are its."""

    directory: Path
    kubeconfig: Path
    server: str
    etcd_url: str
    pids: dict[str, int]

    def to_json(self) -> str:
        data = asdict(self)
        data["directory"] = str(self.directory)
        data["kubeconfig"] = str(self.kubeconfig)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ControlPlane:
        data = json.loads(text)
        return cls(
            directory=Path(data["directory"]),
            kubeconfig=Path(data["kubeconfig"]),
            server=data["server"],
            etcd_url=data["etcd_url"],
            pids={k: int(v) for k, v in data["pids"].items()},
        )


class LocalControlPlane:
    """Bring a control plane up in `directory` and down again.

    Parameters
    ----------
    directory
        Where the certificates, the etcd data, the logs, the kubeconfig and ``state.json`` live.
    binaries
        The directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and
        ``stages.yaml``.
    nodes
        How many fake nodes kwok manages.
    die_with_parent
        Ask the kernel to kill every process when the calling process dies (for tests).
    """

    def __init__(
        self,
        directory: Path,
        *,
        binaries: Path,
        nodes: int = 3,
        die_with_parent: bool = False,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.directory = directory
        self.binaries = binaries
        self.nodes = nodes
        self.die_with_parent = die_with_parent
        self._say = say
        # Handles of the processes this object started, kept so that they are reaped (and no
        # ResourceWarning says they were dropped while running). `down` works from pids alone.
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    def up(self, *, timeout: float = 60.0) -> ControlPlane:
        """Start everything and wait until the API is ready and the nodes are Ready.

        Idempotent: a control plane already running in `directory` is returned as it is.
        """
        existing = running_control_plane(self.directory)
        if existing is not None:
            self._say(f"already running: {existing.server}")
            return existing
        self.down()
        deadline = time.monotonic() + timeout
        pki = write_pki(self.directory / "pki")
        pids: dict[str, int] = {}
        try:
            etcd_url = self._start_etcd(pids, deadline)
            port = free_port()
            server = f"https://127.0.0.1:{port}"
            kubeconfig = apiclient.write_kubeconfig(self.directory / "kubeconfig", server=server, pki=pki)
            self._start("kube-apiserver", self._apiserver_args(pki, etcd_url, port), pids)
            api = apiclient.ApiClient.from_kubeconfig(kubeconfig)
            _wait(lambda: api.ready(), deadline, "kube-apiserver /readyz", self._log("kube-apiserver"))
            self._start("kube-controller-manager", self._controller_manager_args(pki, kubeconfig), pids)
            self._start("kube-scheduler", self._scheduler_args(kubeconfig), pids)
            self._start("kwok", self._kwok_args(kubeconfig), pids)
            for i in range(self.nodes):
                api.create_fake_node(f"kwok-node-{i}")
            _wait(lambda: api.ready_nodes() >= self.nodes, deadline, "kwok nodes Ready", self._log("kwok"))
            self._checkalive(pids)
        except BaseException:
            stop_groups(reversed(list(pids.values())))
            self._reap_children()
            raise
        plane = ControlPlane(self.directory, kubeconfig, server, etcd_url, pids)
        (self.directory / _STATE).write_text(plane.to_json())
        self._say(f"up: {server} (kubeconfig {kubeconfig})")
        return plane

    def down(self, *, grace: float = 10.0) -> bool:
        """Stop every process recorded in `directory`: asked to end, then killed what is left
        `grace` seconds later (0 for a plane whose directory is removed next: kube-apiserver drains
        its watches for longer than 10 s, and etcd has nothing to keep). Returns whether anything
        was running. The processes this handle started are reaped, also when another handle of the
        plane stopped them."""
        state = self.directory / _STATE
        if not state.exists():
            self._reap_children()
            return False
        plane = ControlPlane.from_json(state.read_text())
        stop_groups(reversed(list(plane.pids.values())), grace=grace)
        self._reap_children()
        state.unlink(missing_ok=True)
        self._say("down")
        return True

    # --- faults, for tests of the controller under an API-server outage ----------------------

    def stop_apiserver(self) -> None:
        """Kill kube-apiserver at once (SIGKILL, as a crash or a lost node would); etcd keeps the
        data, and the controller-manager, the scheduler and kwok keep running, retrying."""
        self._kill(self._recorded().pids["kube-apiserver"])

    def start_apiserver(self, *, timeout: float = 60.0) -> ControlPlane:
        """Start kube-apiserver again, on the same port, certificates and etcd, wait until it is
        ready, and restart the controller-manager with it (as a control-plane node's restart
        does: after an API-server-only restart, the controller-manager's stale-cache checks back
        off for minutes before the deployment controller acts again). The recorded state gets the
        new pids."""
        plane = self._recorded()
        port = int(plane.server.rsplit(":", 1)[1])
        pki = Pki.at(self.directory / "pki")
        pids = dict(plane.pids)
        api = apiclient.ApiClient.from_kubeconfig(plane.kubeconfig)
        deadline = time.monotonic() + timeout
        self._restart("kube-apiserver", self._apiserver_args(pki, plane.etcd_url, port), pids)
        _wait(lambda: api.ready(), deadline, "kube-apiserver /readyz", self._log("kube-apiserver"))
        controllers = self._controller_manager_args(pki, plane.kubeconfig)
        self._restart("kube-controller-manager", controllers, pids)
        restarted = ControlPlane(plane.directory, plane.kubeconfig, plane.server, plane.etcd_url, pids)
        (self.directory / _STATE).write_text(restarted.to_json())
        return restarted

    def _restart(self, name: str, args: list[str], pids: dict[str, int]) -> None:
        """Start `name` again (stopping the old process first if it lives)."""
        old = pids.get(name)
        if old is not None and alive(old):
            self._kill(old)
        # tied by die_with_parent to the thread that forks: fork where it lives on
        on_lasting_thread(lambda: self._start(name, args, pids))

    def _kill(self, pid: int) -> None:
        """SIGKILL the process group of `pid` and wait until it is gone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        started_here = self._processes.pop(pid, None)
        if started_here is not None:
            started_here.wait(timeout=10)  # our child: reaped at once, no zombie to poll for
        else:
            stop_groups([pid], grace=0)

    def _recorded(self) -> ControlPlane:
        state = self.directory / _STATE
        if not state.exists():
            raise LocalClusterError(f"no control plane is running in {self.directory}")
        return ControlPlane.from_json(state.read_text())

    # --- processes -------------------------------------------------------------------------

    def _start(self, name: str, args: list[str], pids: dict[str, int]) -> None:
        log = (self.directory / "logs" / f"{name}.log").open("ab")
        preexec = die_with_parent if self.die_with_parent else None
        proc = subprocess.Popen(
            [str(self.binaries / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
            cwd=self.directory,
        )
        log.close()
        self._processes[proc.pid] = proc
        pids[name] = proc.pid
        self._say(f"started {name} (pid {proc.pid})")

    def _reap_children(self) -> None:
        for proc in self._processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._processes = {pid: p for pid, p in self._processes.items() if p.returncode is None}

    def _log(self, name: str) -> Path:
        return self.directory / "logs" / f"{name}.log"

    def _checkalive(self, pids: dict[str, int]) -> None:
        for name, pid in pids.items():
            if not alive(pid):
                raise LocalClusterError(
                    f"{name} exited during start-up; last lines:\n{tail(self._log(name))}"
                )

    def _start_etcd(self, pids: dict[str, int], deadline: float) -> str:
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        args = [
            "--name=local",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=local={peer_url}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        self._start("etcd", args, pids)
        _wait(lambda: apiclient.etcd_healthy(url), deadline, "etcd /health", self._log("etcd"))
        return url

    def _apiserver_args(self, pki: Pki, etcd_url: str, port: int) -> list[str]:
        return [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",  # mandatory here: there may be no default route
            f"--secure-port={port}",
            f"--cert-dir={self.directory / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--v=0",
        ]

    def _controller_manager_args(self, pki: Pki, kubeconfig: Path) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            "--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,"
            "namespace-controller,serviceaccount-controller,serviceaccount-token-controller,"
            "endpointslice-controller,pod-garbage-collector-controller,node-lifecycle-controller,"
            "persistentvolume-binder-controller,horizontal-pod-autoscaler-controller",
            # The HPA controller acts every few seconds here (15 s by default). There is no metrics
            # API on this plane, so it enforces an HPA's bounds and nothing else.
            "--horizontal-pod-autoscaler-sync-period=3s",
            "--leader-elect=false",
            "--secure-port=0",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--v=0",
        ]

    def _scheduler_args(self, kubeconfig: Path) -> list[str]:
        return [f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--secure-port=0", "--v=0"]

    def _kwok_args(self, kubeconfig: Path) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=true",
            "--node-lease-duration-seconds=40",
            f"--config={self.binaries / 'stages.yaml'}",
            f"--config={write_extra_stages(self.directory)}",
            "--cidr=10.244.0.0/16",
            "--node-ip=127.0.0.1",
        ]


def running_control_plane(directory: Path) -> ControlPlane | None:
    """The control plane recorded in `directory` if all its processes live and the API is ready."""
    state = directory / _STATE
    if not state.exists():
        return None
    try:
        plane = ControlPlane.from_json(state.read_text())
    except (ValueError, KeyError):
        return None
    if not all(alive(pid) for pid in plane.pids.values()):
        return None
    try:
        ready = apiclient.ApiClient.from_kubeconfig(plane.kubeconfig).ready()
    except LocalClusterError:
        ready = False
    return plane if ready else None


def _wait(check: Callable[[], bool], deadline: float, what: str, log: Path) -> None:
    def answered() -> bool:
        with contextlib.suppress(LocalClusterError):
            return check()
        return False

    try:
        wait_until(
            answered, timeout=max(0.0, deadline - time.monotonic()), what=what, interval=0.05, backoff=1.5
        )
    except TimeoutError as exc:
        raise LocalClusterError(f"{exc}; last lines of {log.name}:\n{tail(log)}") from exc


@contextlib.contextmanager
def started(directory: Path, *, binaries: Path, nodes: int = 3) -> Iterator[ControlPlane]:
    """A control plane for the duration of a ``with`` block (killed with the caller if it dies)."""
    plane = LocalControlPlane(directory, binaries=binaries, nodes=nodes, die_with_parent=True)
    try:
        yield plane.up()
    finally:
        plane.down()
