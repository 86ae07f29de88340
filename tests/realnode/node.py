"""A real single-node Kubernetes for tests: the control plane of tests/k8s/plane.py on the
host's address, plus containerd v2 (runc, a CNI bridge), a kubelet, kube-scheduler, kube-proxy
(iptables) and CoreDNS, all as host processes, with the hub's images imported into containerd.

Pods really run: images are the ones `tests/realnode/images/build.sh` made, probes are real,
Services work through kube-proxy (their ClusterIPs answer from the host too) and names resolve
through CoreDNS. Built by `make realnode` (binaries: tests/k8s/controlplane/testenv.sh --node).

Machine-wide state lives in two fixed folders (so a crashed run is found and swept by the next
one) and one node runs per machine at a time (a lock). `stop()` drains the pods, stops every
process and sweeps what the kubelet and CNI leave behind; `leftovers()` names anything that
is still there: processes, mounts, network namespaces, links, iptables chains, cgroups.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import ssl
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tests.chart.chart import CHART, load_yaml
from tests.k8s.plane import ControlPlane, free_port, wait_for

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config"
IMAGES_SCRIPT = HERE / "images" / "build.sh"

NODE_NAME = "semantest-node"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "semantest0"
VAR = Path("/var/lib/semantest-realnode")  # containerd root, kubelet root, pod logs, volumes
RUN = Path("/run/semantest-realnode")  # containerd state and socket, network namespaces
LOCK = Path("/run/semantest-realnode.lock")
CONTAINERD_SOCKET = RUN / "containerd.sock"
RUNC = "/usr/sbin/runc"
CNI_BIN = Path("/usr/lib/cni")
# iptables chains made by kube-proxy, the kubelet and CNI (bridge ipMasq, portmap)
CHAIN = re.compile(r"^(KUBE-|CNI-)")
CGROUP_ROOT = Path("/sys/fs/cgroup")
VOLUMES = 2  # hostPath PersistentVolumes, 1Gi each
NODE_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy", "containerd", "ctr",
                 "containerd-shim-runc-v2", "coredns")


class NodeError(RuntimeError):
    """The node could not be started."""


def why_not_here(bin_dir: Path | None) -> str | None:
    """Why this host cannot run the real node (None when it can); one line, for a skip."""
    if os.geteuid() != 0:
        return "the real-node tier needs root (containers, cgroups, iptables)"
    probe = CGROUP_ROOT / "memory" / f"semantest-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        return f"the real-node tier needs write access to cgroups ({probe.parent}: {e.strerror})"
    missing = [t for t in (RUNC, str(CNI_BIN / "bridge"), "/usr/sbin/iptables",
                           "/usr/sbin/conntrack") if not os.access(t, os.X_OK)]
    if missing:
        return f"the real-node tier lacks {', '.join(missing)}: run `make realnode-deps`"
    if bin_dir is not None:
        absent = [b for b in NODE_BINARIES if not os.access(bin_dir / b, os.X_OK)]
        if absent:
            return f"the real-node tier lacks {', '.join(absent)}: run `make realnode`"
    return None


def host_address() -> str:
    """The host's own IPv4 address (the source of its default route): where pods reach the
    API server and the cluster DNS."""
    routes = json.loads(subprocess.run(["ip", "-4", "-j", "route", "get", "1.1.1.1"],
                                       capture_output=True, text=True, check=True).stdout)
    return str(routes[0]["prefsrc"])


def build_images() -> dict[str, Any]:
    """Run images/build.sh (cheap when nothing changed) and return its images.json."""
    proc = subprocess.run(["bash", str(IMAGES_SCRIPT)], capture_output=True, text=True,
                          check=False, timeout=1800)
    if proc.returncode != 0:
        raise NodeError(f"{IMAGES_SCRIPT} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(Path(proc.stdout.strip().splitlines()[-1]).read_text()))


def registry_aliases(images: dict[str, Any]) -> dict[str, str]:
    """No registry is reachable here, so the images that the chart's defaults and
    manifests/install.yaml name are loaded into the node under those names, as `kind load`
    does: the hub built from this tree as the release's image, and the Redis built here (Debian's
    redis-server, a stand-in for the official redis image) as the default managed Redis."""
    values = load_yaml(CHART / "values.yaml")
    app_version = load_yaml(CHART / "Chart.yaml")["appVersion"]
    redis = values["cluster"]["spec"]["redis"]["managed"]["image"]
    if "/" not in redis.split(":")[0]:
        redis = f"docker.io/library/{redis}"
    return {f"{values['image']['repository']}:{app_version}": images["hub"],
            redis: images["redis"]}


def _render(template: str, **values: object) -> str:
    return string.Template((CONFIG / template).read_text()).substitute(
        {k: str(v) for k, v in values.items()})


def _run(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check,
                          timeout=timeout)


@dataclass
class RealNode(ControlPlane):
    """The control plane (on `address`, the host's IP) plus one real node; see the module doc.

    `images` is build.sh's images.json: `hub`, `redis`, `pause` are the image names that pods
    can use (they are in containerd already; nothing is ever pulled).
    """

    images: dict[str, Any] = field(default_factory=dict)
    # more names for images in containerd (alias -> image), as `kind load` would add them
    aliases: dict[str, str] = field(default_factory=dict)
    _lock: TextIO | None = None
    _ip_forward: str = ""

    @property
    def volumes(self) -> Path:
        """Where hostPath PersistentVolumes keep their data."""
        return VAR / "volumes"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ctr` in the kubelet's containerd namespace (k8s.io)."""
        return _run(str(self.bin_dir / "ctr"), "--address", str(CONTAINERD_SOCKET),
                    "--namespace", "k8s.io", *args, check=check, timeout=300)

    # -- lifecycle -----------------------------------------------------------------------

    def _start(self) -> None:
        self._lock = LOCK.open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeError(f"another real node runs on this machine ({LOCK} is locked)") from None
        sweep(self.bin_dir)  # whatever a killed run left
        for d in (VAR, RUN):
            d.mkdir(parents=True, exist_ok=True)
        self._ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")  # pods reach Services, the net
        super()._start()  # etcd, kube-apiserver, kube-controller-manager
        deadline = time.monotonic() + self.start_timeout
        self._start_containerd(deadline)
        self._start_kubelet(deadline)
        self._start_scheduler(deadline)
        self._start_kube_proxy(deadline)
        self._start_dns(deadline)
        for n in range(VOLUMES):
            self._add_volume(f"semantest-realnode-{n}")

    def _start_containerd(self, deadline: float) -> None:
        conf_dir = self.workdir / "cni"
        conf_dir.mkdir(exist_ok=True)
        (conf_dir / "10-semantest.conflist").write_text(_render(
            "cni.conflist", bridge=BRIDGE, pod_cidr=POD_CIDR, ipam_dir=RUN / "ipam"))
        config = self.workdir / "containerd.toml"
        config.write_text(_render(
            "containerd.toml", root=VAR / "containerd", state=RUN / "containerd",
            socket=CONTAINERD_SOCKET, runc=RUNC, cni_bin=CNI_BIN, cni_conf=conf_dir,
            pause=self.images["pause"]))
        # containerd finds its shim (next to it) and runc on PATH
        path = f"{self.bin_dir}{os.pathsep}/usr/sbin{os.pathsep}{os.environ.get('PATH', '')}"
        self._spawn("containerd", ["--config", str(config), "--log-level", "warn"],
                    env={**os.environ, "PATH": path})
        self._wait(lambda: self.ctr("version", check=False).returncode == 0, deadline,
                   "containerd")
        for image, archive in self.images["archives"].items():
            if image != self.images["base"]:
                self.ctr("images", "import", archive)
        for alias, image in self.aliases.items():
            self.ctr("images", "tag", "--force", image, alias)

    def _start_kubelet(self, deadline: float) -> None:
        root = VAR / "kubelet"
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.address,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(self.ca_file)}},
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
            "cgroupDriver": "cgroupfs",  # no systemd here
            "failCgroupV1": False,  # this host mounts cgroup v1 (hybrid)
            "failSwapOn": False,
            "clusterDNS": [self.address],
            "clusterDomain": "cluster.local",
            "podCIDR": POD_CIDR,
            "podLogsDir": str(VAR / "pod-logs"),
            "volumePluginDir": str(root / "volume-plugins"),
            "staticPodPath": "",
            "rotateCertificates": False,
            "serializeImagePulls": False,
            # nothing can be pulled again here: never collect images, never evict for disk
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        }
        path = self.workdir / "kubelet.json"
        path.write_text(json.dumps(config, indent=2))
        kubeconfig = self.client_kubeconfig("kubelet", f"system:node:{NODE_NAME}",
                                            "system:nodes")
        self._spawn("kubelet", [
            f"--config={path}", f"--kubeconfig={kubeconfig}", f"--root-dir={root}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={self.address}", "--v=1"])
        self._wait(self._node_ready, deadline, f"node {NODE_NAME} Ready")

    def _node_ready(self) -> bool:
        found = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if found.returncode != 0:
            return False
        conditions = json.loads(found.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _start_scheduler(self, deadline: float) -> None:
        kubeconfig = self.client_kubeconfig("scheduler", "system:kube-scheduler")
        port = free_port()
        self._spawn("kube-scheduler", [
            f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
            f"--secure-port={port}", "--leader-elect=false", "--v=1"])
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed on the fly
        self._wait_http(f"https://127.0.0.1:{port}/healthz", deadline, "kube-scheduler",
                        insecure)

    def _start_kube_proxy(self, deadline: float) -> None:
        health = free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "bindAddress": self.address,
            "healthzBindAddress": f"127.0.0.1:{health}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "clientConnection": {"kubeconfig": str(
                self.client_kubeconfig("kube-proxy", "system:kube-proxy"))},
            # 0: leave the host's conntrack sysctls alone (no CAP_SYS_RESOURCE here)
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }
        path = self.workdir / "kube-proxy.json"
        path.write_text(json.dumps(config, indent=2))
        self._spawn("kube-proxy", [f"--config={path}", "--v=1"])
        self._wait_http(f"http://127.0.0.1:{health}/healthz", deadline, "kube-proxy", None)

    def _start_dns(self, deadline: float) -> None:
        # CoreDNS reads Services, EndpointSlices, Pods and Namespaces (its upstream RBAC)
        self.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "semantest:coredns"},
            "rules": [{"apiGroups": [""], "resources": ["services", "endpoints", "pods",
                                                         "namespaces"],
                       "verbs": ["list", "watch"]},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["list", "watch"]}]})
        self.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "semantest:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "semantest:coredns"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": "semantest:coredns"}]})
        corefile = self.workdir / "Corefile"
        corefile.write_text(_render(
            "Corefile", address=self.address,
            kubeconfig=self.client_kubeconfig("coredns", "semantest:coredns")))
        self._spawn("coredns", ["-conf", str(corefile)])

        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection((self.address, 53), 1):
                return True
            return False

        self._wait(answers, deadline, "CoreDNS")

    def _add_volume(self, name: str) -> None:
        """A hostPath PersistentVolume (there is no provisioner): what a user of a one-node
        cluster without a StorageClass makes for the hub's Redis claim. World-writable, as
        fsGroup does not apply to hostPath and Redis runs as its own user."""
        path = self.volumes / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        self.apply({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "hostPath": {"path": str(path), "type": "Directory"}}})

    def _wait(self, check: Any, deadline: float, what: str) -> None:
        def alive_and(check: Any = check) -> bool:
            for proc in self._procs:
                if proc.popen.poll() is not None:
                    raise NodeError(f"{proc.name} exited with {proc.popen.returncode} while "
                                    f"waiting for {what}:\n{proc.tail()}")
            return bool(check())

        try:
            wait_for(alive_and, max(1.0, deadline - time.monotonic()), what, interval=0.5)
        except TimeoutError as e:
            tails = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self._procs)
            raise NodeError(f"{e}\n{tails}") from None

    def stop(self) -> None:
        """Drain the pods (so the kubelet and CNI undo their networking), stop every process,
        then sweep the rest. Idempotent."""
        try:
            if self._procs and all(p.popen.poll() is None for p in self._procs):
                self._drain()
        finally:
            super().stop()
            sweep(self.bin_dir)
            if self._ip_forward:
                Path("/proc/sys/net/ipv4/ip_forward").write_text(self._ip_forward)
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    def _drain(self) -> None:
        by_name = {p.name: p for p in self._procs}
        scheduler = by_name.get("kube-scheduler")
        if scheduler is not None:  # no new pod reaches the kubelet from now on
            scheduler.popen.terminate()
            scheduler.popen.wait(15)
        self.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=0",
                     "--force", "--wait=false", check=False, timeout=120)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not self.ctr("tasks", "ls", "-q", check=False).stdout.strip()
                     and not _netns(), 90, "the kubelet to stop every pod", interval=1)

    def leftovers(self) -> list[str]:
        """What of the node is still on the machine (empty after a clean stop)."""
        return leftovers(self._procs)


# ---- sweeping ------------------------------------------------------------------------------


def _netns() -> list[Path]:
    base = RUN / "containerd"
    return [p for p in base.rglob("cni-*") if p.is_file()] if base.exists() else []


def _mounts() -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith((str(VAR), str(RUN)))]


def _shims() -> list[int]:
    """Processes started for our containerd: its shims, and the containers under them."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(CONTAINERD_SOCKET) in cmdline or cmdline.startswith(str(VAR)):
                pids.append(int(proc.name))
    return pids


def _kubepods() -> list[Path]:
    return sorted(CGROUP_ROOT.glob("*/kubepods*"))


def _chains() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            out = _run(tool, check=False).stdout
            chains = [line[1:].split()[0] for line in out.splitlines()
                      if line.startswith(":") and CHAIN.match(line[1:])]
            if chains:
                found[tool] = chains
    return found


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def leftovers(procs: list[Any] = ()) -> list[str]:  # type: ignore[assignment]
    """Everything of a real node still on this machine, one line per kind."""
    found = []
    alive = [p.name for p in procs if p.popen.poll() is None]
    if alive:
        found.append(f"processes: {', '.join(alive)}")
    if _shims():
        found.append(f"container processes: {_shims()}")
    if _mounts():
        found.append(f"mounts: {_mounts()}")
    if _netns():
        found.append(f"network namespaces: {_netns()}")
    if _link_exists(BRIDGE):
        found.append(f"link {BRIDGE}")
    for tool, chains in _chains().items():
        found.append(f"{tool} chains: {chains}")
    if _kubepods():
        found.append(f"cgroups: {[str(p) for p in _kubepods()]}")
    for d in (VAR, RUN):
        if d.exists():
            found.append(f"folder {d}")
    return found


def sweep(bin_dir: Path) -> None:
    """Remove every trace of a real node: container processes, mounts, network namespaces,
    the bridge, iptables chains, kubepods cgroups, the state folders."""
    for pid in _shims():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not _shims(), 10, "container processes to die", interval=0.2)
    for point in sorted(_mounts(), key=len, reverse=True):
        _run("umount", "--lazy", point, check=False)
    if _link_exists(BRIDGE):
        _run("ip", "link", "delete", BRIDGE, check=False)
    if _chains():
        if os.access(bin_dir / "kube-proxy", os.X_OK):
            _run(str(bin_dir / "kube-proxy"), "--cleanup", check=False)
        _drop_chains()
    for cgroup in _kubepods():
        for d in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    for d in (VAR, RUN):
        shutil.rmtree(d, ignore_errors=True)
    for link in Path("/var/log/containers").glob("*.log"):
        if link.is_symlink() and os.readlink(link).startswith(str(VAR)):
            link.unlink()


def _drop_chains() -> None:
    """Delete the KUBE-*/CNI-* chains and every rule that jumps to them, table by table."""
    for save, restore in (("iptables-save", "iptables-restore"),
                          ("ip6tables-save", "ip6tables-restore")):
        if not shutil.which(save):
            continue
        kept = []
        for line in _run(save, check=False).stdout.splitlines():
            if line.startswith(":") and CHAIN.match(line[1:]):
                continue
            if line.startswith("-A "):
                words = line.split()
                if CHAIN.match(words[1]) or any(
                    CHAIN.match(w) for i, w in enumerate(words) if words[i - 1] in ("-j", "-g")
                ):
                    continue
            kept.append(line)
        subprocess.run([restore], input="\n".join(kept) + "\n", text=True, check=False,
                       capture_output=True)
