"""Every kopf registration of the operator, and nothing else: the table of contents.

Each handler's decorator says what it reacts to; its body hands over to `reconcile.Converger`,
which does the one idempotent pass. There is no delete handler and no timer on the
SemantestCluster, so kopf puts no finalizer on it: children go by garbage collection (owner
references), also while the operator is down.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import kopf

from semantest.tracing import create_tracing
from semantest_operator import reconcile, resources
from semantest_operator.apply import Kube

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
SELF_SIGNED_CERTS = {**resources.OWNED, resources.COMPONENT_LABEL: "tls"}
CERT_CHECK_INTERVAL = 3600.0  # s


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
    settings.posting.level = logging.CRITICAL  # our own Events only (reconcile.py), no log echo
    settings.watching.server_timeout = 300  # re-open every watch: no silently stuck stream
    settings.watching.client_timeout = 330
    owned = f"{resources.MANAGED_BY_LABEL}={resources.MANAGER}"
    for group, version, plural in CHILDREN:
        settings.watching.label_selectors[group, version, plural] = owned
    memo.kube = await Kube.connect()
    memo.tracing = create_tracing("semantest-operator")  # OTEL_* as for the hub (off unset)
    memo.converger = reconcile.Converger(memo.kube, importlib.metadata.version("semantest-hub"))


@kopf.on.cleanup()
async def stop_operator(memo: kopf.Memo, **_: Any) -> None:
    """Stop pending retries and close the API client."""
    memo.converger.close()
    await memo.kube.close()
    memo.tracing.flush()


@kopf.on.resume(*CLUSTERS)
@kopf.on.create(*CLUSTERS)
@kopf.on.update(*CLUSTERS)
async def reconcile_cluster(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Make the children what the spec implies, then report it in status (see reconcile.py)."""
    with memo.tracing.span("reconcile", attributes={"semantest.cluster": f"{namespace}/{name}"}):
        outcome = await memo.converger.converge(namespace or "", name)
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
async def restore_child(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A child changed, went, or reports new status: converge the cluster that owns it."""
    owner = reconcile.owner_of(body)
    if owner is not None:
        await memo.converger.nudge(body.metadata.namespace or "", owner)


@kopf.timer("", "v1", "secrets", labels=SELF_SIGNED_CERTS, interval=CERT_CHECK_INTERVAL,
            initial_delay=CERT_CHECK_INTERVAL)
async def renew_certificate(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Hourly, per self-signed certificate: a pass renews it once it is due."""
    owner = reconcile.owner_of(body)
    if owner is not None:
        await memo.converger.nudge(body.metadata.namespace or "", owner)
