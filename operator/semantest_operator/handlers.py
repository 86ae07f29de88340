"""Every kopf registration of the operator, and nothing else: the table of contents.

Each handler's decorator says what it reacts to; its body hands over to `reconcile.Converger`,
which does the one idempotent pass. There is no delete handler and no timer or daemon on any
resource, so kopf puts no finalizer anywhere: children go by garbage collection (owner
references), also while the operator is down. (Certificate renewal checks are scheduled by the
Converger; older versions had a kopf timer on the `N-tls` Secrets, whose finalizer
`release_legacy_finalizer` removes.)
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import kopf

from semantest.tracing import create_tracing
from semantest_operator import autopilot, reconcile, resources
from semantest_operator.apply import Kube, transient

CLUSTERS = (resources.GROUP, resources.VERSION, resources.PLURAL)
# The kinds of children the operator watches (server-side filtered on our label).
CHILDREN = (
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("cert-manager.io", "v1", "certificates"),
)
LEGACY_FINALIZER = f"{resources.GROUP}/finalizer"  # put on N-tls Secrets by versions < 0.3


@kopf.on.startup()
async def start_operator(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping under our API group, watch only our children, open the client."""
    settings.persistence.finalizer = f"{resources.GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=resources.GROUP
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=resources.GROUP, key="last-handled-configuration"
    )
    settings.posting.reporting_component = resources.MANAGER
    settings.posting.event_name_prefix = "semantest-"
    settings.posting.level = logging.CRITICAL  # our Events only (reconcile, autopilot), no log echo
    settings.watching.server_timeout = 300  # re-open every watch: no silently stuck stream
    settings.watching.client_timeout = 330
    owned = f"{resources.MANAGED_BY_LABEL}={resources.MANAGER}"
    for group, version, plural in CHILDREN:
        if plural != "secrets":  # Secrets the spec names carry no label of ours: watch them all
            settings.watching.label_selectors[group, version, plural] = owned
    memo.kube = await Kube.connect()
    memo.tracing = create_tracing("semantest-operator")  # OTEL_* as for the hub (off unset)
    version = importlib.metadata.version("semantest-hub")
    memo.converger = reconcile.Converger(memo.kube, version)
    memo.autopilot = autopilot.Autopilot(memo.kube, version, memo.autopilot_interval)


@kopf.on.cleanup()
async def stop_operator(memo: kopf.Memo, **_: Any) -> None:
    """Stop pending retries and the auto-pilot, and close the API client."""
    memo.converger.close()
    await memo.autopilot.close()
    await memo.kube.close()
    memo.tracing.flush()


@kopf.on.resume(*CLUSTERS)
@kopf.on.create(*CLUSTERS)
@kopf.on.update(*CLUSTERS)
async def reconcile_cluster(name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo,
                            **_: Any) -> None:
    """Make the children what the spec implies, then report it in status (see reconcile.py).
    A pass the API server failed (429, 5xx, no connection) is retried with backoff, and never
    reported as degradation. The auto-pilot follows the cluster when its gateways scale on load."""
    key = (namespace or "", name)
    memo.autopilot.follow(*key, body)
    try:
        span = {"semantest.cluster": f"{namespace}/{name}"}
        with memo.tracing.span("reconcile", attributes=span):
            outcome = await memo.converger.converge(*key)
    except Exception as exc:
        if not transient(exc):
            raise
        delay = memo.converger.transient_delay(key, exc)
        raise kopf.TemporaryError(f"the API server failed: {exc}", delay=delay) from None
    problem = outcome and outcome.problem
    if problem and problem.permanent:
        raise kopf.PermanentError(f"{problem.reason}: {problem.message}")
    if problem:
        message = f"{problem.reason}: {problem.message}"
        raise kopf.TemporaryError(message, delay=reconcile.RETRY_DELAY)


@kopf.on.event("apps", "v1", "deployments", labels=resources.OWNED)
@kopf.on.event("apps", "v1", "statefulsets", labels=resources.OWNED)
@kopf.on.event("", "v1", "services", labels=resources.OWNED)
@kopf.on.event("", "v1", "configmaps", labels=resources.OWNED)
@kopf.on.event("", "v1", "secrets", labels=resources.OWNED)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=resources.OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=resources.OWNED)
@kopf.on.event("cert-manager.io", "v1", "certificates", labels=resources.OWNED)
async def restore_child(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A child changed, went, or reports new status: converge the cluster that owns it (a
    status pass when only its status moved; nothing for the echo of our own write)."""
    owner = reconcile.owner_of(body)
    if owner is None:
        return
    namespace = body.metadata.namespace or ""
    if type == "DELETED":
        memo.converger.forget(namespace, body.get("kind", ""), body.metadata.name or "")
        verdict = "pass"
    else:
        verdict = memo.converger.observe(body, owner)
    if verdict != "none":
        await memo.converger.nudge(namespace, owner, status_only=verdict == "status")


@kopf.on.event("", "v1", "secrets", labels=resources.OWNED,
               when=lambda body, **_: LEGACY_FINALIZER in _finalizers(body))
async def release_legacy_finalizer(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Take off the finalizer an older operator's renewal timer left on a certificate Secret,
    so that deleting its cluster or namespace never waits for an operator."""
    await memo.kube.drop_finalizer("Secret", body.metadata.namespace or "", body.metadata.name,
                                   _finalizers(body), LEGACY_FINALIZER)


def _finalizers(body: kopf.Body) -> list[str]:
    return list(body.get("metadata", {}).get("finalizers") or [])


@kopf.index(*CLUSTERS)
async def referenced_secrets(
    body: kopf.Body, name: str, namespace: str | None, **_: Any
) -> dict[tuple[str, str], str]:
    """(namespace, Secret) -> the clusters whose spec names that Secret."""
    cluster = resources.Cluster.of(body, "")
    return {(namespace or "", secret): name for secret in resources.referenced_secrets(cluster)}


@kopf.on.event("", "v1", "secrets")
async def referenced_secret_changed(
    body: kopf.Body, memo: kopf.Memo, referenced_secrets: kopf.Index[Any, str], **_: Any
) -> None:
    """A Secret the spec names appeared, changed or went: converge every cluster naming it."""
    namespace = body.metadata.namespace or ""
    for owner in referenced_secrets.get((namespace, body.metadata.name), []):
        await memo.converger.nudge(namespace, owner)


@kopf.on.probe(id="api")
async def api_answers(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: the API server answers a list of what the operator watches, with its own
    credentials, within a few seconds. When it does not (unreachable, token revoked, RBAC
    removed), every watch fails too, and /healthz answers 500 instead of 200."""
    for path in memo.watched_paths:
        try:
            await memo.kube.can_list(path)
        except Exception as exc:  # a failed probe is an answer, not something to retry
            raise kopf.PermanentError(f"GET {path}: {exc}") from None
    return "ok"
