"""Converging one SemantestCluster: the single reconcile that every handler runs.

One pass reads the custom resource fresh, checks what the schema could not (referenced Secrets,
cert-manager), dry-runs a new spec on the API server, creates missing Secrets and certificates,
server-side-applies every child, deletes children the spec no longer implies, and writes the
status. It is level-based and idempotent: a pass over an unchanged world writes nothing.

Passes for one cluster never overlap (`Converger`): a handler that finds a pass running asks for
one more afterwards instead of starting a second, so a burst of child events costs two passes.
The status is written inside that critical section (not through kopf's `patch`, which is applied
after a handler returns), so the newest view is always the one that lands.

A child's event that only reports new status (same uid, generation and labels as the operator
last applied, e.g. a Deployment's ready count) costs a status pass: one GET of the cluster and,
if the status changed, one PATCH; the echo of the operator's own write costs nothing. The
Converger also schedules each self-signed certificate's renewal check itself (no kopf timer, so
no finalizer on any Secret), and retries transient API failures quietly with backoff.

This module must not register kopf handlers (handlers.py does) or build manifests by hand
(resources.py does).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import logging
import secrets
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf
from kubernetes.aio.client.exceptions import ApiException

from semantest_operator import conditions, redis_sentinel, resources, tls
from semantest_operator import users as login_users
from semantest_operator.apply import Kube, namespace_terminating, reason_of, transient
from semantest_operator.conditions import Condition, Problem

RETRY_DELAY = 10.0  # s before a blocked cluster is tried again (or a new spec is read)
TRANSIENT_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # s between passes the API server failed
RENEWAL_CHECK = 3600.0  # s: the longest a self-signed certificate goes unchecked
WORKLOADS = ("Deployment", "StatefulSet")
log = logging.getLogger(__name__)
HANDOVER_MANAGER = "semantest-autoscaling-handover"
PRUNED_KINDS = ("Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler",
                "PodDisruptionBudget")
TLS_KEYS = ("tls.crt", "tls.key")


@dataclass
class Outcome:
    """What a pass did: the status it wrote, the problem that stopped it, if any, and when the
    self-signed certificate must be looked at again."""

    status: dict[str, Any]
    problem: Problem | None
    recheck_at: datetime.datetime | None = None
    workloads: dict[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    applied: dict[tuple[str, str], Mapping[str, Any]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """What the operator's last write of a child left: an event that still matches it in all
    but resourceVersion only carries new status."""

    uid: str
    generation: int
    resource_version: str
    labels: Mapping[str, str]

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Seen:
        meta = obj["metadata"]
        return cls(str(meta.get("uid")), int(meta.get("generation") or 0),
                   str(meta.get("resourceVersion")), dict(meta.get("labels") or {}))


@dataclass
class TlsState:
    """The TLSReady condition, the hash that rolls the gateways, and status.tls."""

    condition: Condition
    hash: str = ""
    status: dict[str, str] | None = None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _decode(secret: Mapping[str, Any], key: str) -> bytes:
    return base64.b64decode((secret.get("data") or {}).get(key, ""))


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", []))


def _newest(obj: Mapping[str, Any], other: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The later of two views of one object. resourceVersions are opaque by contract, but the
    API server's are etcd revisions, integers that only grow; anything else keeps `obj`."""
    if other is None or other["metadata"].get("uid") != obj["metadata"].get("uid"):
        return obj
    try:
        later = int(other["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return obj
    return other if later else obj


def owner_of(child: Mapping[str, Any]) -> str | None:
    """The name of the SemantestCluster that owns a child, if one does."""
    for ref in child["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == resources.KIND and ref.get("apiVersion", "").startswith(
            f"{resources.GROUP}/"
        ):
            return str(ref["name"])
    return None


def _owns_replicas(deployment: Mapping[str, Any]) -> bool:
    """Whether our apply still holds .spec.replicas of this Deployment."""
    for entry in deployment["metadata"].get("managedFields", []):
        if entry.get("manager") == resources.MANAGER and entry.get("operation") == "Apply":
            if "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {}):
                return True
    return False


def _autopilot_free(previous: Any, new: Any) -> Any:
    """A component's previous status without the auto-pilot's decision (autopilot.py writes
    that, and a pass neither repeats it, which could bring back an older one, nor counts it as
    a change), unless the pass says something about it."""
    if isinstance(previous, dict) and isinstance(new, dict) and "autoscaling" not in new:
        return {k: v for k, v in previous.items() if k != "autoscaling"}
    return previous


class Converger:
    """Runs passes, at most one at a time per cluster, against one API client."""

    def __init__(self, kube: Kube, version: str) -> None:
        self._kube = kube
        self._version = version
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._again: set[tuple[str, str]] = set()
        self._restatus: set[tuple[str, str]] = set()
        self._retries: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._renewals: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._seen: dict[tuple[str, str, str], Seen] = {}  # (namespace, kind, name)
        self._workloads: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}

    async def converge(
        self, namespace: str, name: str, *, status_only: bool = False
    ) -> Outcome | None:
        """Run a pass now (after the running one), then the ones asked for meanwhile; None when
        the cluster is gone or going."""
        key = (namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            first = self._status_pass if status_only else self._pass
            outcome = await first(namespace, name)
            while key in self._again or key in self._restatus:
                if key in self._again:
                    self._again.discard(key)
                    self._restatus.discard(key)
                    outcome = await self._pass(namespace, name)
                else:
                    self._restatus.discard(key)
                    outcome = await self._status_pass(namespace, name)
        return outcome

    async def nudge(self, namespace: str, name: str, *, status_only: bool = False) -> None:
        """Make sure a pass starts after this moment, without waiting behind a running one.

        `status_only`: a child reported new status and nothing else, so re-reading the cluster
        and re-evaluating its status is enough (a full pass follows if the spec moved on).
        A pass that stops on a problem that may go away by itself (a Secret still missing), or
        leaves the cluster Progressing, is tried again after RETRY_DELAY, as kopf retries the
        spec handlers: the status then follows the workloads even if a watch event about them
        was missed (a status once stayed at 'waiting for router 1/2' with every Deployment
        Ready); one the API server
        failed is tried again after a growing delay (TRANSIENT_DELAYS), with one log line.
        """
        key = (namespace, name)
        lock = self._locks.get(key)
        if lock is not None and lock.locked():
            (self._restatus if status_only else self._again).add(key)
            return
        try:
            outcome = await self.converge(namespace, name, status_only=status_only)
        except Exception as exc:
            if not transient(exc):
                self._retry_later(key, RETRY_DELAY)
                raise  # and let kopf log the error
            self._retry_later(key, self.transient_delay(key, exc))
            return
        self._failures.pop(key, None)
        if outcome and (outcome.status.get("phase") == "Progressing"
                        or (outcome.problem and not outcome.problem.permanent)):
            self._retry_later(key, RETRY_DELAY)
        elif outcome and "primary" in (outcome.status.get("redis") or {}):
            # a Sentinel group's primary moves without any Kubernetes event: look again
            self._retry_later(key, RETRY_DELAY, status_only=True)

    def transient_delay(self, key: tuple[str, str], exc: BaseException) -> float:
        """The next delay for a cluster whose pass the API server failed, and one log line."""
        count = self._failures.get(key, 0)
        self._failures[key] = count + 1
        delay = TRANSIENT_DELAYS[min(count, len(TRANSIENT_DELAYS) - 1)]
        log.warning("[%s/%s] the API server failed the pass (%s); again in %.0f s",
                    *key, exc, delay)
        return delay

    def observe(self, child: Mapping[str, Any], owner: str) -> str:
        """What a child's event asks for: "none" (the echo of our own write), "status" (only
        its status changed) or "pass" (it changed, went, or is unknown to this process)."""
        meta = child["metadata"]
        namespace = str(meta.get("namespace") or "")
        key = (namespace, str(child.get("kind")), str(meta.get("name")))
        seen = self._seen.get(key)
        if meta.get("deletionTimestamp") or seen is None:
            return "pass"
        now = Seen.of(child)
        if now.resource_version == seen.resource_version:
            return "none"
        if (now.uid, now.generation, now.labels) != (seen.uid, seen.generation, seen.labels):
            return "pass"
        if child.get("kind") not in WORKLOADS:
            return "none"  # e.g. an autoscaler's or a Service's status: not in ours
        component = now.labels.get(resources.COMPONENT_LABEL, "")
        known = self._workloads.setdefault((namespace, owner), {})
        known[component] = _newest(child, known.get(component))
        return "status"

    def forget(self, namespace: str, kind: str, name: str) -> None:
        """A child went: the next event about that name is news."""
        self._seen.pop((namespace, kind, name), None)

    def _retry_later(self, key: tuple[str, str], delay: float, status_only: bool = False) -> None:
        if key not in self._retries:
            self._retries[key] = asyncio.create_task(self._retry(*key, delay, status_only))

    def close(self) -> None:
        """Cancel the retries and renewal checks still waiting (the operator is stopping)."""
        for task in self._retries.values():
            task.cancel()
        for handle in self._renewals.values():
            handle.cancel()

    async def _retry(self, namespace: str, name: str, delay: float, status_only: bool) -> None:
        await asyncio.sleep(delay)
        del self._retries[(namespace, name)]
        await self.nudge(namespace, name, status_only=status_only)

    def _schedule_renewal(self, key: tuple[str, str], at: datetime.datetime | None) -> None:
        """One pending renewal check per self-signed cluster, at the renewal time or within
        RENEWAL_CHECK, whichever is sooner (kopf timers would need a finalizer)."""
        old = self._renewals.pop(key, None)
        if old is not None:
            old.cancel()
        if at is None:
            return
        delay = min(max((at - _now()).total_seconds(), 1.0), RENEWAL_CHECK)
        loop = asyncio.get_running_loop()
        self._renewals[key] = loop.call_later(
            delay, lambda: self._retry_later(key, 0.0)
        )

    async def _pass(self, namespace: str, name: str) -> Outcome | None:
        key = (namespace, name)
        body = await self._kube.get(resources.KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self._schedule_renewal(key, None)
            self._workloads.pop(key, None)
            return None  # garbage collection takes the children; nothing to keep in shape
        outcome = await Pass(self._kube, body, self._version).run()
        if outcome is not None:
            self._schedule_renewal(key, outcome.recheck_at)
            for (kind, child), obj in outcome.applied.items():
                self._seen[(namespace, kind, child)] = Seen.of(obj)
            # an event handled during the pass may have brought a newer view than the apply's
            known = self._workloads.get(key, {})
            self._workloads[key] = {
                component: _newest(obj, known.get(component))
                for component, obj in outcome.workloads.items()
            }
        return outcome

    async def _status_pass(self, namespace: str, name: str) -> Outcome | None:
        """Re-evaluate the status from the workloads as last seen; a full pass when the spec
        moved on, a problem is reported, or this process has not seen every workload yet."""
        key = (namespace, name)
        body = await self._kube.get(resources.KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        current = Pass(self._kube, body, self._version)
        workloads = self._workloads.get(key, {})
        if current.fresh or set(workloads) != current.expected_workloads():
            return await self._pass(namespace, name)
        return await current.restatus(workloads)


class Pass:
    """One reconcile of one SemantestCluster body."""

    def __init__(self, kube: Kube, body: Mapping[str, Any], version: str) -> None:
        self.kube = kube
        self.body = kopf.Body(cast(kopf.RawBody, body))
        self.cluster = resources.Cluster.of(body, version)
        self.uid = str(body["metadata"]["uid"])
        self.generation = int(body["metadata"].get("generation") or 1)
        self.previous: Mapping[str, Any] = body.get("status") or {}
        self.now = _now()
        self.events: list[tuple[str, str, str]] = []  # (type, reason, message), posted at the end
        self.fresh = self.is_fresh()
        self.recheck_at: datetime.datetime | None = None  # the self-signed certificate's renewal
        self.applied: dict[tuple[str, str], Mapping[str, Any]] = {}  # (kind, name) -> as stored

    async def run(self) -> Outcome | None:
        """The pass; None when the namespace is being deleted (everything in it goes anyway)."""
        problem = None
        workloads: dict[str, Mapping[str, Any]] = {}
        try:
            problem = await self.missing()
            if problem is None and self.fresh:
                problem = await self.dry_run()
            if problem is None:
                await self.generate_secrets()
                tls_state = await self.tls_state()
                workloads = await self.apply(tls_state.hash)
                await self.prune()
        except ApiException as exc:
            if namespace_terminating(exc):
                return None
            if transient(exc):
                raise  # not a verdict on the spec: the Converger tries again, quietly
            reason = "InvalidSpec" if exc.status == 422 else "ApplyFailed"
            problem = Problem(reason, reason_of(exc), permanent=exc.status == 422)
        status = self.blocked(problem) if problem else self.healthy(workloads, tls_state)
        if problem is None:
            await self.observe_sentinels(status)
        await self.report(status)
        return Outcome(status, problem, self.recheck_at, workloads, self.applied)

    def expected_workloads(self) -> set[str]:
        """The components whose Deployment (or StatefulSet) a full pass reports on."""
        kinds = {m["metadata"]["labels"][resources.COMPONENT_LABEL]
                 for m in resources.desired(self.cluster) if m["kind"] in WORKLOADS}
        return kinds

    async def restatus(self, objs: Mapping[str, Mapping[str, Any]]) -> Outcome:
        """The status from workloads already seen, the rest carried from the last full pass."""
        tls_state = TlsState(self.carried(conditions.TLS_READY, None), "",
                             self.previous.get("tls"))
        status = self.healthy(objs, tls_state)
        if status.get("redis") is not None:  # keep what only a full pass looks at
            status["redis"] = {**(self.previous.get("redis") or {}), **status["redis"]}
            await self.observe_sentinels(status)
        await self.report(status)
        return Outcome(status, None)

    async def observe_sentinels(self, status: dict[str, Any]) -> None:
        """A Sentinel group's primary and replicas into `status.redis`, asked at every pass: a
        failover moves the primary without any Kubernetes event."""
        if redis_sentinel.enabled(self.cluster):
            status["redis"] = {**(status.get("redis") or {}),
                               **await redis_sentinel.status(self.kube, self.cluster)}

    async def report(self, status: dict[str, Any]) -> None:
        """Write the status (when it changed), then post the pass's Events."""
        await self.write(status)
        for kind, reason, message in self.events:
            kopf.event(self.body, type=kind, reason=reason, message=message)

    def note(self, reason: str, message: str) -> None:
        self.events.append(("Normal", reason, message))

    def is_fresh(self) -> bool:
        """A spec not yet applied cleanly: check it whole on the server before changing a thing."""
        degraded = any(
            c.get("type") == conditions.DEGRADED and c.get("status") == "True"
            for c in self.previous.get("conditions", [])
        )
        return degraded or self.previous.get("observedGeneration") != self.generation

    def adopt(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Make the cluster the controlling owner, so garbage collection takes the child."""
        kopf.adopt(manifest, owner=self.body)
        return manifest

    # ---- checks that need the API server ---------------------------------------------------

    async def missing(self) -> Problem | None:
        """What the spec refers to but is not there: Secrets, their keys, cert-manager."""
        cluster, kube = self.cluster, self.kube
        wanted: list[tuple[str, tuple[str, ...]]] = [
            (ref.name, (ref.key,)) for ref in resources.user_refs(cluster)
        ]
        if cluster.tls_enabled and cluster.tls_mode == "secret":
            wanted.append((str(resources.tls_secret_name(cluster)), TLS_KEYS))
        for name, keys in wanted:
            found = await kube.get("Secret", cluster.namespace, name)
            if found is None:
                return Problem("SecretNotFound", f"Secret {name} named in the spec does not exist")
            absent = [key for key in keys if key not in (found.get("data") or {})]
            if absent:
                return Problem("SecretKeyMissing", f"Secret {name} has no key {', '.join(absent)}")
        problem = await self.load_users()
        if problem is not None:
            return problem
        if cluster.tls_enabled and cluster.tls_mode == "certManager":
            if not await kube.serves_cert_manager():
                return Problem(
                    "CertManagerMissing",
                    "tls.mode is certManager but the cluster does not serve "
                    "cert-manager.io/v1 Certificates: install cert-manager or pick another mode",
                )
        return None

    async def load_users(self) -> Problem | None:
        """Read the login users from spec.auth.usersSecret into the cluster the builders see."""
        name = resources.users_secret_name(self.cluster)
        if name is None:
            return None
        found = await self.kube.get("Secret", self.cluster.namespace, name)
        if found is None:
            return Problem("SecretNotFound", f"Secret {name} named in the spec does not exist")
        try:
            entries = login_users.parse(found.get("data") or {})
        except login_users.InvalidUsers as exc:
            return Problem("InvalidUsers", f"Secret {name} (auth.usersSecret): {exc}")
        self.cluster = dataclasses.replace(self.cluster, users=entries)
        return None

    async def dry_run(self) -> Problem | None:
        """Let the API server validate every child before anything is written."""
        for manifest in resources.desired(self.cluster):
            try:
                await self.kube.apply(self.adopt(manifest), dry_run=True)
            except ApiException as exc:
                if exc.status != 422:
                    raise
                what = f"{manifest['kind']} {manifest['metadata']['name']}"
                return Problem("InvalidSpec", f"{what}: {reason_of(exc)}", permanent=True)
        return None

    # ---- Secrets and certificates ----------------------------------------------------------

    async def generate_secrets(self) -> None:
        """Create the credentials the user did not provide; an existing one is never touched."""
        for ref in resources.generated_refs(self.cluster):
            component = "redis" if ref.name == self.cluster.child("redis") else "auth"
            value = secrets.token_urlsafe(32).encode()
            manifest = resources.secret(self.cluster, ref.name, component, {ref.key: value})
            if await self.kube.create(self.adopt(manifest)):
                self.note("SecretGenerated", f"generated Secret {ref.name} ({ref.key})")

    async def tls_state(self) -> TlsState:
        """The certificate the gateways serve: issued, found, or still awaited."""
        cluster = self.cluster
        if not cluster.tls_enabled:
            message = "tls.enabled is false: the gateways serve plain HTTP"
            return TlsState(Condition(conditions.TLS_READY, False, "Disabled", message))
        name = str(resources.tls_secret_name(cluster))
        if cluster.tls_mode == "selfSigned":
            cert = await self.self_signed(name)
        else:
            found = await self.kube.get("Secret", cluster.namespace, name)
            cert = _decode(found, "tls.crt") if found else b""
        if not cert:
            message = f"waiting for cert-manager to write Secret {name}"
            waiting = Condition(conditions.TLS_READY, False, "WaitingForCertificate", message)
            return TlsState(waiting)
        try:
            expiry = tls.not_after(cert)
        except ValueError:
            message = f"Secret {name}: tls.crt is not a PEM certificate"
            return TlsState(Condition(conditions.TLS_READY, False, "InvalidCertificate", message))
        stamp = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {"secretName": name, "notAfter": stamp}
        if cluster.tls_mode == "selfSigned":
            renew_before = datetime.timedelta(days=cluster.spec["tls"]["renewBeforeDays"])
            self.recheck_at = expiry - renew_before
        if expiry <= self.now:
            message = f"the certificate in Secret {name} expired at {stamp}"
            condition = Condition(conditions.TLS_READY, False, "CertificateExpired", message)
        else:
            condition = Condition(conditions.TLS_READY, True, "CertificateValid",
                                  f"Secret {name} holds a certificate valid until {stamp}")
        return TlsState(condition, resources.digest(cert), status)

    async def ca(self) -> tls.KeyPair:
        """The cluster's CA, made the first time it is needed and never rewritten."""
        name = self.cluster.child("ca")
        found = await self.kube.get("Secret", self.cluster.namespace, name)
        if found is not None:
            return tls.KeyPair(_decode(found, "tls.crt"), _decode(found, "tls.key"))
        pair = tls.new_ca(f"{self.cluster.name} semantest CA", self.now)
        data = {"tls.crt": pair.cert, "tls.key": pair.key}
        manifest = resources.secret(self.cluster, name, "tls-ca", data, "kubernetes.io/tls")
        if not await self.kube.create(self.adopt(manifest)):
            return await self.ca()  # created meanwhile: use that one
        self.note("CertificateIssued", f"created the cluster CA in Secret {name}")
        return pair

    async def self_signed(self, name: str) -> bytes:
        """A server certificate signed by the cluster's CA, issued again when due."""
        cluster, kube, spec = self.cluster, self.kube, self.cluster.spec["tls"]
        ca = await self.ca()
        current = await kube.get("Secret", cluster.namespace, name)
        names = resources.dns_names(cluster)
        reason = "there is none yet"
        if current is not None:
            pair = tls.KeyPair(_decode(current, "tls.crt"), _decode(current, "tls.key"))
            renew_before = datetime.timedelta(days=spec["renewBeforeDays"])
            reason = tls.renewal_reason(pair, ca.cert, names, renew_before, self.now) or ""
            if not reason:
                return pair.cert
        pair = tls.issue(ca, names, datetime.timedelta(days=spec["validityDays"]), self.now)
        data = {"tls.crt": pair.cert, "tls.key": pair.key, "ca.crt": ca.cert}
        manifest = self.adopt(resources.secret(cluster, name, "tls", data, "kubernetes.io/tls"))
        if current is None:
            await kube.create(manifest)
            self.note("CertificateIssued", f"issued the gateway certificate in {name}")
        else:
            manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await kube.replace(manifest)
            self.note("CertificateRenewed", f"renewed the certificate in {name}: {reason}")
        return pair.cert

    # ---- children --------------------------------------------------------------------------

    async def apply(self, tls_hash: str) -> dict[str, Mapping[str, Any]]:
        """Apply every child; returns the Deployments and the StatefulSet as now stored."""
        cluster, kube = self.cluster, self.kube
        workloads: dict[str, Mapping[str, Any]] = {}
        created = []
        for manifest in resources.desired(cluster, tls_hash):
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            if kind == "Deployment" and "replicas" not in manifest["spec"]:
                await self.hand_over_replicas(name)
            obj, new = await kube.apply(self.adopt(manifest))
            self.applied[kind, name] = obj
            if new:
                created.append(f"{kind}/{name}")
            if kind in ("Deployment", "StatefulSet"):
                workloads[obj["metadata"]["labels"][resources.COMPONENT_LABEL]] = obj
        if created:
            reason = "Created" if self.fresh else "Restored"
            self.note(reason, ", ".join(created))
        return workloads

    async def hand_over_replicas(self, name: str) -> None:
        """Before our apply drops .spec.replicas (the autoscaler's now), leave the current value
        with another manager, or the API server would reset the Deployment to one replica."""
        current = await self.kube.get("Deployment", self.cluster.namespace, name)
        if current is None or not _owns_replicas(current):
            return
        await self.kube.hand_over(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": self.cluster.namespace},
                "spec": {"replicas": current["spec"]["replicas"]},
            },
            HANDOVER_MANAGER,
        )

    async def prune(self) -> None:
        """Delete our children that the spec no longer implies (Secrets are never deleted)."""
        cluster, kube = self.cluster, self.kube
        wanted = {(m["kind"], m["metadata"]["name"]) for m in resources.desired(cluster)}
        kinds = list(PRUNED_KINDS)
        if await kube.serves_cert_manager():
            kinds.append("Certificate")
        selector = (
            f"{resources.INSTANCE_LABEL}={cluster.name},"
            f"{resources.MANAGED_BY_LABEL}={resources.MANAGER}"
        )
        gone = []
        for kind in kinds:
            for obj in await kube.select(kind, cluster.namespace, selector):
                name = obj["metadata"]["name"]
                if (kind, name) not in wanted and _owned_by(obj, self.uid):
                    await kube.delete(kind, cluster.namespace, name, obj["metadata"]["uid"])
                    gone.append(f"{kind}/{name}")
        if gone:
            self.note("Pruned", "deleted (no longer in the spec): " + ", ".join(gone))

    # ---- status ----------------------------------------------------------------------------

    def healthy(
        self, objs: Mapping[str, Mapping[str, Any]], tls_state: TlsState
    ) -> dict[str, Any]:
        """The status after a full pass: conditions and counts from what the API server holds."""
        cluster = self.cluster
        workloads = {name: conditions.Workload.of(obj) for name, obj in objs.items()}
        external = None if cluster.managed_redis else cluster.redis_url
        evaluated = conditions.evaluate(
            {name: w for name, w in workloads.items() if name != "redis"},
            conditions.redis_condition(workloads.get("redis"), external),
            tls_state.condition,
            cluster.tls_enabled,
            None,
        )
        status = self.summary(evaluated)
        for component in (*resources.COMPONENTS, "redis"):
            workload = workloads.get(component)
            status[component] = workload and {
                "replicas": workload.desired,
                "readyReplicas": workload.ready,
                "selector": resources.selector_string(cluster, component),
            }
            stale = "autoscaling" in (self.previous.get(component) or {})
            if status[component] and stale and not cluster.autopiloted(component):
                status[component]["autoscaling"] = None  # the auto-pilot's, no longer true
        status["tls"] = tls_state.status
        return status

    def blocked(self, problem: Problem) -> dict[str, Any]:
        """The status when the pass stopped: the problem, and the rest as last seen."""
        evaluated = conditions.evaluate(
            {},
            self.carried(conditions.REDIS_READY, problem),
            self.carried(conditions.TLS_READY, problem),
            self.cluster.tls_enabled,
            problem,
        )
        return self.summary(evaluated)

    def summary(self, evaluated: list[Condition]) -> dict[str, Any]:
        return {
            "observedGeneration": self.generation,
            "phase": conditions.phase(evaluated),
            "endpoint": resources.endpoint(self.cluster),
            "conditions": conditions.stamp(
                self.previous.get("conditions", []), evaluated, self.generation, self.now
            ),
        }

    def carried(self, kind: str, problem: Problem | None) -> Condition:
        """A condition this pass could not check: as it was, or unknown so far."""
        for old in self.previous.get("conditions", []):
            if old.get("type") == kind:
                return Condition(kind, old["status"] == "True", old["reason"], old["message"])
        why = problem.reason if problem else "no full pass yet"
        return Condition(kind, False, "NotChecked", f"not checked yet: {why}")

    async def write(self, status: dict[str, Any]) -> None:
        """Patch the status when it differs, and tell about the transitions that matter."""
        changed = {k: v for k, v in status.items() if _autopilot_free(self.previous.get(k), v) != v}
        if not changed:
            return
        await self.kube.patch_status(
            resources.KIND, self.cluster.namespace, self.cluster.name, changed
        )
        before = {c["type"]: c for c in self.previous.get("conditions", [])}
        for condition in status["conditions"]:
            old = before.get(condition["type"], {})
            same = all(old.get(k) == condition[k] for k in ("status", "reason", "message"))
            if condition["type"] == conditions.DEGRADED and condition["status"] == "True":
                if not same:
                    self.events.append(("Warning", condition["reason"], condition["message"]))
            elif condition["type"] == conditions.READY and condition["status"] == "True":
                if old.get("status") != "True":
                    self.note("Ready", f"the hub serves at {status['endpoint']}")
