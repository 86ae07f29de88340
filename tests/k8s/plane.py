"""A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager
run as plain processes on loopback, envtest-style, with certificates generated here.

The binaries come from `tests/k8s/controlplane/testenv.sh` (built from the published Go
modules, cached outside the repo). Nothing here mocks the API server: schema validation,
admission, RBAC, owner references, garbage collection and the Deployment/ReplicaSet controllers
are the real ones. There is no kubelet and no scheduler, so Pods are created but stay Pending.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
TESTENV = REPO / "tests" / "k8s" / "controlplane" / "testenv.sh"
SERVICE_CIDR = "10.0.0.0/24"  # data only: no kube-proxy, nothing dials it
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")

T = TypeVar("T")


class PlaneError(RuntimeError):
    """The control plane could not be built, found or started."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike its base class, says what kubectl printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


def find_bin_dir(build: bool = False) -> Path:
    """Return the folder holding the control-plane binaries, kubectl and helm.

    Runs testenv.sh (cheap when the binaries are cached); unless `build` is true it refuses to
    start a cold build, which takes about 20 minutes: `make testenv` does that.
    """
    env = dict(os.environ)
    if not build:
        env["SEMANTEST_K8S_NO_BUILD"] = "1"
    proc = subprocess.run(
        ["bash", str(TESTENV)], env=env, capture_output=True, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise PlaneError(f"{TESTENV} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    bin_dir = Path(lines[-1])
    missing = [b for b in REQUIRED_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        raise PlaneError(f"{bin_dir} lacks {', '.join(missing)}")
    return bin_dir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Call `check` until it returns something truthy, and return that; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---- certificates ------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    *,
    ca: bool = False,
    server_sans: Sequence[x509.GeneralName] = (),
    client: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usages = []
        if server_sans:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            b = b.add_extension(x509.SubjectAlternativeName(list(server_sans)), critical=False)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return b.sign(signer, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class _Pki:
    """The files of the plane's PKI: one CA for serving and client certs, plus the SA key."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def issue(
        self,
        leaf: str,
        subject: x509.Name,
        issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
        **kw: Any,
    ) -> None:
        """Write `leaf`.crt/.key, signed by `issuer` (default: the CA on disk)."""
        if issuer is None:
            ca_key = serialization.load_pem_private_key(self.key("ca").read_bytes(), None)
            assert isinstance(ca_key, rsa.RSAPrivateKey)
            issuer = (x509.load_pem_x509_certificate(self.ca.read_bytes()), ca_key)
        k = _key()
        self.crt(leaf).write_bytes(_pem(_cert(subject, k, issuer, **kw)))
        _write_key(k, self.key(leaf))

    def generate(self, address: str = "127.0.0.1") -> None:
        """The CA and every certificate; `address` (where the API server listens) is one more
        name in its serving certificate."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca = _cert(_name("semantest-test-ca"), ca_key, None, ca=True)
        self.ca.write_bytes(_pem(ca))
        _write_key(ca_key, self.key("ca"))
        sans: list[x509.GeneralName] = [
            *{x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", address)},
            x509.IPAddress(next(ipaddress.ip_network(SERVICE_CIDR).hosts())),
            x509.DNSName("localhost"),
            *(
                x509.DNSName(n)
                for n in (
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                )
            ),
        ]
        # The front proxy (aggregation layer) has its own CA, as on a kubeadm cluster.
        fp_key = _key()
        fp_ca = _cert(_name("semantest-front-proxy-ca"), fp_key, None, ca=True)
        self.crt("front-proxy-ca").write_bytes(_pem(fp_ca))
        _write_key(fp_key, self.key("front-proxy-ca"))
        leaves = {
            "apiserver": (_name("kube-apiserver"), (ca, ca_key), {"server_sans": sans}),
            "admin": (_name("semantest-admin", "system:masters"), (ca, ca_key), {"client": True}),
            "controller-manager": (
                _name("system:kube-controller-manager"),
                (ca, ca_key),
                {"client": True},
            ),
            "front-proxy-client": (_name("front-proxy-client"), (fp_ca, fp_key), {"client": True}),
        }
        for leaf, (subject, issuer, kw) in leaves.items():
            self.issue(leaf, subject, issuer, **kw)
        sa = _key()
        _write_key(sa, self.key("sa"))
        self.dir.joinpath("sa.pub").write_bytes(
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def _kubeconfig(server: str, ca: Path, user: dict[str, str]) -> str:
    """A kubeconfig (JSON is valid YAML) for one cluster, one user, one context."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "semantest",
                    "cluster": {"server": server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [
                {"name": "semantest", "context": {"cluster": "semantest", "user": "user"}}
            ],
            "current-context": "semantest",
        },
        indent=2,
    )


# ---- processes ---------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGKILL this child when the test process dies, however it dies
    (SIGKILL: with everything dying at once, the apiserver would hang in graceful shutdown)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports.

    Attributes once started: `server` (https URL), `kubeconfig` (admin, group system:masters),
    `ca_file`, `bin_dir`, `env` (os.environ copy with KUBECONFIG and bin_dir first on PATH),
    `workdir` (certs, kubeconfigs, logs), `version` (the server's gitVersion).
    """

    bin_dir: Path
    workdir: Path
    start_timeout: float = 180.0
    # Where the API server listens and what it advertises. Loopback (the default) keeps it to
    # this host's tests; a real node's pods need an address they can reach, and then the API
    # server also keeps the `kubernetes` Service's endpoints and authorizes kubelets as nodes.
    address: str = "127.0.0.1"
    server: str = ""
    version: str = ""
    env: dict[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0
    _procs: list[_Proc] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self._pki.ca

    @property
    def _pki(self) -> _Pki:
        return _Pki(self.workdir / "pki")

    @property
    def logs(self) -> dict[str, Path]:
        """Each component's log file, by name."""
        return {p.name: p.log for p in self._procs}

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> ControlPlane:
        """Start the three components and wait until the plane serves and reconciles."""
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _start(self) -> None:
        pki = self._pki
        pki.generate(self.address)
        etcd_port, peer_port, api_port, kcm_port = (free_port() for _ in range(4))
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self.server = f"https://{self.address}:{api_port}"
        loopback = ipaddress.ip_address(self.address).is_loopback
        deadline = time.monotonic() + self.start_timeout

        self._spawn(
            "etcd",
            [
                "--name=semantest",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=semantest={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait_http(f"{etcd_url}/health", deadline, "etcd /health", ssl_ctx=None)

        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.crt('apiserver')}",
                f"--tls-private-key-file={pki.key('apiserver')}",
                f"--client-ca-file={pki.ca}",
                f"--requestheader-client-ca-file={pki.crt('front-proxy-ca')}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.crt('front-proxy-client')}",
                f"--proxy-client-key-file={pki.key('front-proxy-client')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.workdir / 'pki' / 'sa.pub'}",
                f"--service-account-signing-key-file={pki.key('sa')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                *(
                    # one loopback process: no endpoint reconciling
                    ["--authorization-mode=RBAC", "--endpoint-reconciler-type=none"]
                    if loopback
                    else [
                        "--authorization-mode=Node,RBAC",
                        "--endpoint-reconciler-type=lease",
                        # logs/exec: the kubelet is dialled by IP (the node name does not
                        # resolve) and trusts this CA's admin certificate
                        "--kubelet-preferred-address-types=InternalIP",
                        f"--kubelet-client-certificate={pki.crt('admin')}",
                        f"--kubelet-client-key={pki.key('admin')}",
                    ]
                ),
                "--profiling=false",
                "--v=1",
            ],
        )
        admin_ctx = ssl.create_default_context(cafile=str(pki.ca))
        admin_ctx.load_cert_chain(str(pki.crt("admin")), str(pki.key("admin")))
        self._wait_http(f"{self.server}/readyz", deadline, "kube-apiserver /readyz", admin_ctx)

        self.kubeconfig.write_text(
            _kubeconfig(
                self.server,
                pki.ca,
                {"client-certificate": str(pki.crt("admin")), "client-key": str(pki.key("admin"))},
            )
        )
        kcm_kubeconfig = self.workdir / "controller-manager.kubeconfig"
        kcm_kubeconfig.write_text(
            _kubeconfig(
                self.server,
                pki.ca,
                {
                    "client-certificate": str(pki.crt("controller-manager")),
                    "client-key": str(pki.key("controller-manager")),
                },
            )
        )
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                f"--client-ca-file={pki.ca}",
                f"--root-ca-file={pki.ca}",
                f"--service-account-private-key-file={pki.key('sa')}",
                # the CSR API signs with the plane's CA, as on a kubeadm cluster
                f"--cluster-signing-cert-file={pki.ca}",
                f"--cluster-signing-key-file={pki.key('ca')}",
                # each controller acts as its own ServiceAccount, so RBAC applies to it
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed on the fly
        self._wait_http(
            f"https://127.0.0.1:{kcm_port}/healthz",
            deadline,
            "controller-manager /healthz",
            insecure,
        )

        path = os.environ.get("PATH", "")
        self.env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{path}" if path else str(self.bin_dir),
        }
        for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            self.env.pop(var, None)  # never mistake this for an in-cluster setup

        self.version = json.loads(self._get(f"{self.server}/version", admin_ctx))["gitVersion"]
        # The controller-manager really reconciles once the ServiceAccount controller has made
        # the `default` ServiceAccount of the `default` namespace.
        wait_for(
            lambda: (
                self.kubectl(
                    "get", "serviceaccount", "default", "-n", "default", check=False
                ).returncode
                == 0
            ),
            max(1.0, deadline - time.monotonic()),
            "the controller-manager to create the default ServiceAccount",
            interval=0.5,
        )

    def stop(self) -> None:
        """Stop every component (newest first): SIGTERM, then SIGKILL after 15 s. Idempotent."""
        for proc in reversed(self._procs):
            p = proc.popen
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=15)
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)  # the rest stays for debugging

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests ---------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run `kubectl ARGS` against the plane (admin unless `kubeconfig` is given)."""
        env = dict(self.env or os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), *args],
            input=input,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def get_json(self, *args: str, namespace: str | None = None) -> Any:
        """`kubectl get ARGS -o json`, parsed."""
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", *args, *ns, "-o", "json").stdout)

    def apply(self, manifest: str | dict[str, Any], namespace: str | None = None) -> None:
        """Server-side apply a manifest (YAML/JSON text or one object as a dict)."""
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        ns = ["-n", namespace] if namespace else []
        self.kubectl(
            "apply", "--server-side", "--field-manager=semantest-tests", *ns, "-f", "-", input=text
        )

    def client_kubeconfig(self, name: str, user: str, group: str | None = None) -> Path:
        """A kubeconfig with a client certificate for `user` (in `group`), signed by the
        plane's CA: how node components (kubelet, scheduler, kube-proxy) authenticate."""
        self._pki.issue(name, _name(user, group), client=True)
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(
            _kubeconfig(
                self.server,
                self.ca_file,
                {"client-certificate": str(self._pki.crt(name)),
                 "client-key": str(self._pki.key(name))},
            )
        )
        return path

    def token_for(self, namespace: str, service_account: str, duration: str = "1h") -> str:
        """A ServiceAccount token minted by the TokenRequest API (`kubectl create token`)."""
        return self.kubectl(
            "create", "token", service_account, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()

    def token_kubeconfig(self, token: str, path: Path | None = None) -> Path:
        """Write a kubeconfig that authenticates with `token` and return its path."""
        if path is None:
            fd, name = tempfile.mkstemp(prefix="token-", suffix=".kubeconfig", dir=self.workdir)
            os.close(fd)
            path = Path(name)
        path.write_text(_kubeconfig(self.server, self.ca_file, {"token": token}))
        path.chmod(0o600)
        return path

    # -- internals -----------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # only prctl, no locks taken
            )
        self._procs.append(_Proc(name, popen, log))

    def _get(self, url: str, ctx: ssl.SSLContext | None) -> str:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return str(r.read().decode())

    def _wait_http(
        self, url: str, deadline: float, what: str, ssl_ctx: ssl.SSLContext | None
    ) -> None:
        last = ""
        while True:
            for proc in self._procs:
                if proc.popen.poll() is not None:
                    raise PlaneError(
                        f"{proc.name} exited with {proc.popen.returncode} while waiting for "
                        f"{what}; last log lines:\n{proc.tail()}"
                    )
            try:
                self._get(url, ssl_ctx)
                return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self._procs)
                raise PlaneError(f"timed out waiting for {what} ({last})\n{tails}")
            time.sleep(0.25)
