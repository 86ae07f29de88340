"""The operator's hardening (issue 14), against the real API server of tests/k8s/plane.py.

Some tests put `ApiProxy` between the operator and the API server: a small aiohttp reverse
proxy, started by the test, that forwards every request (watches streamed) to the real
kube-apiserver, counts them, and can answer chosen requests itself with 503 or 429, as an
overloaded API server or its load balancer would. It is a stand-in for faults only: every answer
that is not an injected fault comes from the real API server. Those tests run their own operator
process in their own namespace (outside the module operator's `<prefix>-*`).
"""

# ruff: noqa: F811  (the fixtures imported from test_operator are parameters by name)
from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import pytest

from semantest_operator.resources import MANAGER
from tests.chart.chart import CHART

from .plane import ControlPlane, free_port, wait_for
from .test_operator import (  # noqa: F401  (fixtures are used by name)
    PREFIX,
    TIMEOUT,
    Hub,
    Operator,
    crds,
    hub,
    operator,
    operator_kubeconfig,
    secret_data,
)

# ---- a counting, fault-injecting reverse proxy -------------------------------------------

HOP_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length",
               "upgrade", "proxy-connection", "accept-encoding"}


@dataclass
class Fault:
    """Answer the next `count` requests that match with `status` (a Kubernetes Status body)."""

    matches: Callable[[str, str], bool]  # (method, path with query) -> bool
    count: int
    status: int


@dataclass
class ApiProxy:
    """HTTP on 127.0.0.1 in front of the plane's HTTPS API server, in a thread of its own."""

    plane: ControlPlane
    port: int = field(default_factory=free_port)
    requests: list[tuple[str, str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    injected: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._close: Callable[[], Awaitable[None]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProxy:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        """Close the listener and every open stream, then the loop."""
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def fail(self, matches: Callable[[str, str], bool], count: int, status: int = 503) -> None:
        with self._lock:
            self.faults.append(Fault(matches, count, status))

    def calls(self) -> list[tuple[str, str]]:
        """Every request but the watch streams."""
        with self._lock:
            return [(m, p) for m, p in self.requests if "watch=true" not in p]

    def _fault(self, method: str, path: str) -> int | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.count > 0 and fault.matches(method, path):
                    fault.count -= 1
                    self.injected.append((method, path, fault.status))
                    return fault.status
        return None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        context = ssl.create_default_context(cafile=str(self.plane.ca_file))
        session: aiohttp.ClientSession | None = None

        async def forward(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
            assert session is not None
            status = self._fault(request.method, request.path_qs)
            if status is not None:
                body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "injected by the test's proxy", "code": status,
                        "reason": "ServiceUnavailable" if status == 503 else "TooManyRequests",
                        "details": {"retryAfterSeconds": 1}}
                return aiohttp.web.json_response(body, status=status,
                                                 headers={"Retry-After": "1"})
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
            body = await request.read()
            async with session.request(
                request.method, self.plane.server + request.path_qs, headers=headers,
                data=body or None, ssl=context, skip_auto_headers=("Content-Type",),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            ) as upstream:
                response = aiohttp.web.StreamResponse(status=upstream.status, headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS})
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response

        async def serve() -> None:
            nonlocal session
            session = aiohttp.ClientSession(auto_decompress=False)
            app = aiohttp.web.Application()
            app.router.add_route("*", "/{tail:.*}", forward)
            runner = aiohttp.web.AppRunner(app, shutdown_timeout=1.0)
            await runner.setup()
            await aiohttp.web.TCPSite(runner, "127.0.0.1", self.port).start()

            async def close() -> None:
                await runner.cleanup()
                assert session is not None
                await session.close()

            self._close = close
            self._started.set()

        self._loop.run_until_complete(serve())
        self._loop.run_forever()


@pytest.fixture
def proxied(
    k8s_plane: ControlPlane, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[tuple[Hub, ApiProxy]]:
    """A namespace of its own, an operator for it alone that reaches the API through a proxy."""
    ns = f"prx-{uuid.uuid4().hex[:6]}"
    k8s_plane.kubectl("create", "namespace", ns)
    wait_for(lambda: k8s_plane.kubectl("get", "serviceaccount", "default", "-n", ns,
                                       check=False).returncode == 0, TIMEOUT, "default SA")
    proxy = ApiProxy(k8s_plane).start()
    config = json.loads(operator_kubeconfig.read_text())
    config["clusters"][0]["cluster"] = {"server": proxy.url}
    kubeconfig = tmp_path / "proxied.kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    process = Operator(k8s_plane, kubeconfig, tmp_path / "operator.log", "--standalone",
                       f"--namespace={ns}")
    try:
        process.start()
        yield Hub(k8s_plane, process, ns), proxy
    finally:
        process.stop()
        proxy.stop()
        k8s_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def ready_pass(hub: Hub) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        hub.play_kubelet()
        body = hub.settled()
        ok = body and hub.condition("Ready").get("status") == "True"
        return body if ok else None

    return hub.eventually(ready, "Ready=True")


# ---- 7: a child's status event costs a status check, not a full pass ---------------------

def test_a_child_status_event_costs_no_full_pass(proxied: tuple[Hub, ApiProxy]) -> None:
    hub, proxy = proxied
    hub.create({"gateway": {"replicas": 1}, "router": {"replicas": 1}, "auth": {"replicas": 1}})
    ready_pass(hub)
    # one Pod of the gateway stops being ready, as a failing readiness probe would report it:
    # the controller-manager rewrites the Deployment's status (one or more child events)
    pod = hub.json("pods", "-l", "app.kubernetes.io/component=gateway")["items"][0]
    _settle(proxy)
    before_requests = len(proxy.calls())
    before_events = hub.operator.output().count("Handler 'restore_child' succeeded")
    hub.kubectl("patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"conditions": [
                    {"type": "Ready", "status": "False"}]}}))
    hub.eventually(lambda: hub.condition("Ready").get("status") == "False", "Ready=False")
    _settle(proxy)
    requests = proxy.calls()[before_requests:]
    events = hub.operator.output().count("Handler 'restore_child' succeeded") - before_events
    per_event = len(requests) / max(events, 1)
    print(f"\nchild status events: {events}, operator requests: {len(requests)} "
          f"({per_event:.1f} per event): {requests}")
    assert events >= 1
    assert per_event <= 2, requests


def _settle(proxy: ApiProxy, quiet: float = 2.0) -> None:
    """Wait until the operator has sent nothing for `quiet` seconds."""
    last = (len(proxy.calls()), time.monotonic())
    while time.monotonic() - last[1] < quiet:
        time.sleep(0.2)
        now = len(proxy.calls())
        if now != last[0]:
            last = (now, time.monotonic())


# ---- 1: no finalizer on any Secret ---------------------------------------------------------

LEGACY_FINALIZER = "semantest.io/finalizer"


def test_a_tls_namespace_goes_while_the_operator_is_down(hub: Hub, operator: Operator) -> None:
    hub.create({"tls": {"enabled": True}})
    hub.eventually(lambda: hub.condition("TLSReady").get("status") == "True", "TLSReady")
    for secret in ("hub-tls", "hub-ca"):
        assert not hub.get("secret", secret)["metadata"].get("finalizers"), secret
    operator.stop()
    try:
        hub.kubectl("delete", "semantestcluster", "hub", "--wait=false")
        hub.plane.kubectl("delete", "namespace", hub.ns, "--wait=false")
        hub.eventually(lambda: hub.plane.kubectl("get", "namespace", hub.ns,
                                                 check=False).returncode != 0,
                       "the namespace gone", timeout=60)
    finally:
        operator.start()


def test_the_old_versions_secret_finalizer_is_released(hub: Hub) -> None:
    """Versions with a kopf timer on the certificate Secret left its finalizer there."""
    hub.create({"tls": {"enabled": True}})
    hub.eventually(lambda: hub.condition("TLSReady").get("status") == "True", "TLSReady")
    hub.kubectl("patch", "secret", "hub-tls", "--type=merge", "-p",
                json.dumps({"metadata": {"finalizers": ["example.com/keep", LEGACY_FINALIZER]}}))
    hub.eventually(lambda: hub.get("secret", "hub-tls")["metadata"].get("finalizers")
                   == ["example.com/keep"], "the old finalizer gone, the other kept")


# ---- 2: transient API errors are retried quietly -------------------------------------------


def test_transient_api_errors_are_retried_without_degrading(
    proxied: tuple[Hub, ApiProxy],
) -> None:
    hub, proxy = proxied
    hub.create({})
    body = hub.eventually(hub.settled, "the first pass")
    degraded = {c["type"]: c for c in body["status"]["conditions"]}["Degraded"]

    def apply_to(plural: str) -> Callable[[str, str], bool]:
        return lambda method, path: method == "PATCH" and f"/{plural}/" in path \
            and "fieldManager=semantest-operator" in path and "dryRun" not in path

    # More failures than one call's own retries (5) on the gateway's apply, so the pass
    # itself fails and is tried again; and a 429 storm on the status write.
    proxy.fail(apply_to("deployments"), 7, 503)
    proxy.fail(lambda m, p: m == "PATCH" and p.endswith("/semantestclusters/hub/status"), 3, 429)
    hub.patch({"gateway": {"replicas": 3}})
    generation = hub.cluster()["metadata"]["generation"]
    hub.eventually(lambda: hub.get("deployment", "hub-gateway")["spec"]["replicas"] == 3,
                   "the new replica count applied")
    hub.eventually(lambda: hub.cluster()["status"].get("observedGeneration") == generation,
                   "the status written for the new generation")
    assert len(proxy.injected) == 10, proxy.injected
    after = hub.condition("Degraded")
    assert (after["status"], after["lastTransitionTime"]) == (
        "False", degraded["lastTransitionTime"])  # never flipped
    # Only the operator's own: the API server's controllers post Warnings of their own here
    # (e.g. "Cluster IP ... is not allocated; repairing" from its IP allocator).
    warnings = [event for event in hub.json("events", "--field-selector", "type=Warning")["items"]
                if event.get("reportingComponent") == MANAGER]
    assert warnings == []
    assert "the API server failed" in hub.operator.output()


# ---- 3: replicas 0 -------------------------------------------------------------------------


def test_zero_replicas_count_as_settled(hub: Hub) -> None:
    hub.create({"gateway": {"replicas": 0}, "router": {"replicas": 1}, "auth": {"replicas": 1}})
    ready_pass(hub)
    assert hub.condition("Progressing")["reason"] == "Complete"
    assert "gateway scaled to 0" in hub.condition("Ready")["message"]
    assert hub.cluster()["status"]["gateway"]["replicas"] == 0


# ---- 4: the name rule says which field ---------------------------------------------------


def test_a_bad_name_is_refused_at_metadata_name(k8s_plane: ControlPlane, crds: None) -> None:
    body = {"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster",
            "metadata": {"name": "9lives"}, "spec": {}}
    proc = k8s_plane.kubectl("create", "--dry-run=server", "-n", "default", "-f", "-",
                             input=json.dumps(body), check=False)
    assert proc.returncode != 0
    assert 'metadata.name: Invalid value: "9lives": must be at most 40 characters' in proc.stderr
    assert "<nil>" not in proc.stderr


# ---- 5 and 8: Secrets the spec names are watched; login users ---------------------------


def users_secret(hub: Hub, **entries: str) -> None:
    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "users"},
               "stringData": entries})


def test_a_named_secret_appearing_is_acted_on_at_once(hub: Hub) -> None:
    hub.create({"auth": {"jwt": {"secretRef": {"name": "jwt"}}}})
    hub.eventually(lambda: hub.condition("Degraded").get("reason") == "SecretNotFound",
                   "SecretNotFound")
    since = hub.operator.mark()
    # right after a retry the next one is 10 s away: act then
    hub.eventually(lambda: "failed temporarily: SecretNotFound" in hub.operator.output(since),
                   "a retry")
    started = time.monotonic()
    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jwt"},
               "stringData": {"jwt-secret": "s" * 40}})
    hub.eventually(lambda: hub.condition("Degraded").get("status") == "False", "healthy")
    took = time.monotonic() - started
    hub.eventually(lambda: f"[{hub.ns}/jwt] Handler 'referenced_secret_changed' succeeded"
                   in hub.operator.output(since), "the Secret's event handled")
    assert took < 8, f"{took:.1f} s: the 10 s retry, not the Secret's event"


def test_login_users_reach_the_auth_pods(hub: Hub) -> None:
    from semantest.auth.passwords import hash_password
    from semantest.config import load_settings

    alice = hash_password("wonderland")
    bob = json.dumps({"passwordHash": hash_password("builder"), "tenant": "acme",
                      "scopes": ["client", "admin"]})
    users_secret(hub, alice=alice, bob=bob)
    hub.create({"auth": {"usersSecret": {"name": "users"}}})
    hub.eventually(lambda: hub.get("secret", "hub-auth-config"), "the auth config Secret")
    auth = hub.eventually(lambda: hub.get("deployment", "hub-auth"), "the auth Deployment")
    volume = next(v for v in auth["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    assert volume["secret"]["secretName"] == "hub-auth-config"
    gateway = hub.get("deployment", "hub-gateway")["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in gateway if v["name"] == "config")["configMap"]["name"] == "hub-config"

    def settings() -> Any:
        path = Path(tempfile.mkdtemp()) / "config.json"
        path.write_bytes(secret_data(hub, "hub-auth-config", "config.json"))
        return load_settings({"CONFIG_FILE": str(path)})  # the hub's own parser accepts it

    loaded = settings().auth.users
    assert [(u.username, u.tenant, u.scopes) for u in loaded] == [
        ("alice", "default", ["client"]), ("bob", "acme", ["client", "admin"])]
    assert loaded[0].password_hash == alice
    before = auth["spec"]["template"]["metadata"]["annotations"]["semantest.io/config-hash"]

    users_secret(hub, alice=alice, bob=bob, carol="hunter2")  # a password, not its hash
    degraded = hub.eventually(
        lambda: (c := hub.condition("Degraded")).get("reason") == "InvalidUsers" and c,
        "Degraded InvalidUsers")
    assert degraded["message"] == (
        "Secret users (auth.usersSecret): key carol: not an argon2id hash (`semantest-server "
        "hash-password` prints one) nor a JSON object with passwordHash")
    hub.eventually(lambda: hub.events("InvalidUsers"), "a Warning Event")

    users_secret(hub, alice=alice, bob=bob, carol=hash_password("hunter2"))
    hub.eventually(lambda: hub.condition("Degraded").get("status") == "False", "healthy again")
    assert [u.username for u in settings().auth.users] == ["alice", "bob", "carol"]
    after = hub.get("deployment", "hub-auth")["spec"]["template"]["metadata"]["annotations"]
    assert after["semantest.io/config-hash"] != before  # the auth pods roll onto the new users


# ---- 6: liveness follows the API server ----------------------------------------------------


def health(operator: Operator) -> int:
    """The status of /healthz, 0 when it does not answer within the kubelet's 5 s."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{operator.port}/healthz", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_liveness_fails_while_the_api_server_does_not_answer(
    proxied: tuple[Hub, ApiProxy],
) -> None:
    hub, proxy = proxied
    assert health(hub.operator) == 200
    proxy.fail(lambda m, p: True, 10**9, 503)  # every request, the watches' included
    hub.eventually(lambda: health(hub.operator) == 500, "/healthz 500", timeout=40)
    proxy.faults.clear()
    hub.eventually(lambda: health(hub.operator) == 200, "/healthz 200 again", timeout=40)


# ---- drain: grace period, preStop and disruption budgets ---------------------------------


def test_pods_get_the_time_the_hub_drains_in(hub: Hub) -> None:
    hub.create({"gateway": {"replicas": 1}, "drainTimeout": 45000})
    gateway = hub.eventually(lambda: hub.get("deployment", "hub-gateway"), "the Deployment")
    pod = gateway["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 5 + 45 + 5
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert gateway["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    config = json.loads(hub.get("configmap", "hub-config")["data"]["gateway.json"])
    assert config["server"]["drainTimeout"] == 45000

    def evictable() -> bool:
        hub.play_kubelet()
        pdb = hub.get("pdb", "hub-gateway")
        return bool(pdb and (pdb.get("status") or {}).get("disruptionsAllowed") == 1)

    hub.eventually(evictable, "the single gateway may be evicted (it drains first)")
    assert hub.get("pdb", "hub-gateway")["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# ---- 9: the operator pod's readiness probe -------------------------------------------------


def test_the_operator_pod_has_a_readiness_probe(k8s_plane: ControlPlane, crds: None) -> None:
    """The chart's operator Deployment, rendered by helm and accepted by the API server."""
    rendered = subprocess.run(
        [str(k8s_plane.bin_dir / "helm"), "template", "rel", str(CHART), "--namespace", "default",
         "--show-only", "templates/operator-deployment.yaml"],
        capture_output=True, text=True, check=True, env=k8s_plane.env).stdout
    proc = k8s_plane.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                             input=rendered)
    container = json.loads(proc.stdout)["spec"]["template"]["spec"]["containers"][0]
    probe = container["readinessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "health", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (10, 3)
