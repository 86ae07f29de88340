"""The operator's only door to the API server: server-side apply and a few plain verbs.

Every child is written with server-side apply under the field manager `semantest-operator`
(force: the operator's fields win over hand edits, which is how drift is corrected). The other
verbs exist for what apply must not do: create a generated Secret only when it is missing,
replace a renewed certificate only if nobody changed it meanwhile (resourceVersion), delete a
child the spec no longer implies, and write the custom resource's status.

The resources are a fixed table (`KINDS`), so no discovery is needed except for cert-manager,
which may or may not be installed. This module must not decide *what* to write.

Transient failures (429, 5xx, a dropped connection, a timeout) are retried here with
client-go's own backoff algorithm (`kubernetes.aio.utils.retry.on_error`), a few times within
about three seconds; what still fails after that is `transient()` and the caller retries the
whole pass later, quietly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from kubernetes.aio import client, config
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.utils.retry import Backoff, on_error

from semantest_operator import resources

# kind -> (URL prefix of its group/version, plural)
KINDS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Pod": ("/api/v1", "pods"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "Certificate": ("/apis/cert-manager.io/v1", "certificates"),
    resources.KIND: (f"/apis/{resources.GROUP}/{resources.VERSION}", resources.PLURAL),
}
CERT_MANAGER = "/apis/cert-manager.io/v1"
TRANSIENT_STATUS = {429, 500, 502, 503, 504}
# 5 calls, waits of about 0.2, 0.4, 0.8, 1.6 s (+ up to 50 % jitter): an API server restart or
# a burst of flow control passes; anything longer is the pass's retry (reconcile.py).
BACKOFF = Backoff(steps=5, duration=0.2, factor=2.0, jitter=0.5, cap=5.0)
PROBE_TIMEOUT = 4.0  # s; the kubelet's probe waits 5


def transient(exc: BaseException) -> bool:
    """A failure that says nothing about the spec: the API server is busy, restarting, or
    unreachable for a moment. Worth retrying; never worth reporting as degradation."""
    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUS
    return isinstance(exc, aiohttp.ClientConnectionError | TimeoutError)


def reason_of(exc: ApiException) -> str:
    """The API server's own message for a failed call (its Status body), else the HTTP reason."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return f"{exc.status} {exc.reason}"


def namespace_terminating(exc: ApiException) -> bool:
    """The API server refused a write because the namespace is being deleted."""
    return exc.status == 403 and "NamespaceTerminating" in str(exc.body or "")


def _path(kind: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    prefix, plural = KINDS[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return "/".join(part for part in (path, name, sub) if part)


class Kube:
    """One asyncio API client for the whole operator (in-cluster or from the kubeconfig)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    @classmethod
    async def connect(cls) -> Kube:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        retry: bool = True,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        query = list(query)

        async def once() -> tuple[int, Any]:
            request = await self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = await self._api.call_api(*request)
            await response.read()
            result = self._api.response_deserialize(response, {"2XX": "object"})
            return result.status_code, result.data

        if not retry:
            return await once()
        return await on_error(BACKOFF, transient, once)

    async def apply(
        self, manifest: Mapping[str, Any], *, dry_run: bool = False
    ) -> tuple[Any, bool]:
        """Server-side apply under our field manager, taking over conflicting fields.

        Returns the object as the API server now has it, and whether this call created it.
        """
        query = [("fieldManager", resources.MANAGER), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        meta = manifest["metadata"]
        code, obj = await self._call(
            "PATCH",
            _path(manifest["kind"], meta["namespace"], meta["name"]),
            query=query,
            body=manifest,
            content_type="application/apply-patch+yaml",
        )
        return obj, code == 201

    async def hand_over(self, manifest: Mapping[str, Any], manager: str) -> None:
        """Apply `manifest` (a few fields) under another manager, so those fields survive when
        our own apply stops setting them (Kubernetes' documented ownership transfer)."""
        meta = manifest["metadata"]
        await self._call(
            "PATCH",
            _path(manifest["kind"], meta["namespace"], meta["name"]),
            query=[("fieldManager", manager)],
            body=manifest,
            content_type="application/apply-patch+yaml",
        )

    async def scale(self, kind: str, namespace: str, name: str, replicas: int,
                    manager: str) -> None:
        """Set replicas through the scale subresource, as a HorizontalPodAutoscaler does."""
        await self._call("PATCH", _path(kind, namespace, name, "scale"),
                         query=[("fieldManager", manager)],
                         body={"spec": {"replicas": replicas}},
                         content_type="application/merge-patch+json")

    async def annotate(self, kind: str, namespace: str, name: str,
                       annotations: Mapping[str, str]) -> None:
        """Merge annotations into an object; gone already is fine."""
        try:
            await self._call("PATCH", _path(kind, namespace, name),
                             body={"metadata": {"annotations": dict(annotations)}},
                             content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def create(self, manifest: Mapping[str, Any]) -> bool:
        """Create unless it exists; True when this call created it. Never overwrites."""
        try:
            await self._call(
                "POST",
                _path(manifest["kind"], manifest["metadata"]["namespace"]),
                query=[("fieldManager", resources.MANAGER)],
                body=manifest,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def replace(self, manifest: Mapping[str, Any]) -> None:
        """PUT with the resourceVersion in `manifest`: fails (409) if someone wrote meanwhile."""
        meta = manifest["metadata"]
        await self._call(
            "PUT",
            _path(manifest["kind"], meta["namespace"], meta["name"]),
            query=[("fieldManager", resources.MANAGER)],
            body=manifest,
        )

    async def get(self, kind: str, namespace: str, name: str) -> Any | None:
        """The object, or None when it does not exist."""
        try:
            return (await self._call("GET", _path(kind, namespace, name)))[1]
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def select(self, kind: str, namespace: str, label_selector: str) -> list[Any]:
        """The objects of `kind` in `namespace` that match a label selector."""
        _, found = await self._call(
            "GET", _path(kind, namespace), query=[("labelSelector", label_selector)]
        )
        return list(found.get("items") or [])

    async def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        """Delete exactly the object we saw (uid precondition); gone already is fine."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            await self._call("DELETE", _path(kind, namespace, name), body=body)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge-patch the status subresource (null removes a field); gone already is fine."""
        try:
            await self._call(
                "PATCH",
                _path(kind, namespace, name, "status"),
                body={"status": status},
                content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def drop_finalizer(self, kind: str, namespace: str, name: str,
                             finalizers: list[str], finalizer: str) -> None:
        """Remove one finalizer, only if it is still where we saw it (a JSON patch test)."""
        index = finalizers.index(finalizer)
        patch = [{"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
                 {"op": "remove", "path": f"/metadata/finalizers/{index}"}]
        try:
            await self._call("PATCH", _path(kind, namespace, name), body=patch,
                             content_type="application/json-patch+json")
        except ApiException as exc:
            if exc.status not in (404, 422):  # gone, or the list changed: the next event retries
                raise

    async def can_list(self, path: str) -> None:
        """One list call with the operator's credentials, no retries, a short deadline: raises
        when the API server does not answer it (the liveness probe's question)."""
        await asyncio.wait_for(
            self._call("GET", path, query=[("limit", "1")], retry=False), PROBE_TIMEOUT
        )

    async def serves_cert_manager(self) -> bool:
        """Whether cert-manager's API (cert-manager.io/v1) is installed."""
        try:
            _, found = await self._call("GET", CERT_MANAGER)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("kind") == "Certificate" for r in found.get("resources", []))
