"""The pure parts of a pass: who owns a child, who owns a field, the command line, what a
child's event asks for, when a certificate is looked at again."""

from __future__ import annotations

import asyncio
import datetime

from semantest_operator import main, reconcile


def test_owner_of_finds_the_controlling_semantest_cluster() -> None:
    child = {"metadata": {"ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x"},
        {"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster", "name": "hub"},
    ]}}
    assert reconcile.owner_of(child) == "hub"
    assert reconcile.owner_of({"metadata": {}}) is None
    other = {"metadata": {"ownerReferences": [
        {"apiVersion": "other.io/v1", "kind": "SemantestCluster", "name": "hub"}]}}
    assert reconcile.owner_of(other) is None


def test_replicas_ownership_is_read_from_managed_fields() -> None:
    def deployment(manager: str, fields: dict) -> dict:
        entry = {"manager": manager, "operation": "Apply", "fieldsV1": {"f:spec": fields}}
        return {"metadata": {"managedFields": [entry]}}

    assert reconcile._owns_replicas(deployment("semantest-operator", {"f:replicas": {}}))
    assert not reconcile._owns_replicas(deployment("semantest-operator", {"f:template": {}}))
    assert not reconcile._owns_replicas(deployment("kubectl", {"f:replicas": {}}))


def test_command_line_defaults_to_cluster_wide_peering() -> None:
    args = main.parse([])
    assert (args.namespace, args.peering, args.standalone, args.priority) == (
        [], "semantest", False, None
    )
    args = main.parse(["-n", "team-*", "-n", "ops", "--standalone", "--priority", "7"])
    assert (args.namespace, args.standalone, args.priority) == (["team-*", "ops"], True, 7)


def _deployment(rv: str, generation: int = 1, labels: dict | None = None) -> dict:
    return {"kind": "Deployment", "metadata": {
        "name": "hub-gateway", "namespace": "ns", "uid": "u1", "generation": generation,
        "resourceVersion": rv, "labels": labels or {"app.kubernetes.io/component": "gateway"}}}


def test_a_child_event_is_judged_against_the_last_write() -> None:
    converger = reconcile.Converger(None, "1.0")  # type: ignore[arg-type]  (no API calls here)
    assert converger.observe(_deployment("10"), "hub") == "pass"  # never written by us
    converger._seen[("ns", "Deployment", "hub-gateway")] = reconcile.Seen.of(_deployment("10"))
    assert converger.observe(_deployment("10"), "hub") == "none"  # our own write's echo
    assert converger.observe(_deployment("12"), "hub") == "status"  # only status moved
    assert converger._workloads[("ns", "hub")]["gateway"]["metadata"]["resourceVersion"] == "12"
    assert converger.observe(_deployment("11"), "hub") == "status"
    assert converger._workloads[("ns", "hub")]["gateway"]["metadata"]["resourceVersion"] == "12"
    assert converger.observe(_deployment("13", generation=2), "hub") == "pass"  # spec edited
    relabelled = _deployment("14", labels={"app.kubernetes.io/component": "gateway", "x": "y"})
    assert converger.observe(relabelled, "hub") == "pass"
    hpa = {**_deployment("15"), "kind": "HorizontalPodAutoscaler"}
    converger._seen[("ns", "HorizontalPodAutoscaler", "hub-gateway")] = reconcile.Seen.of(
        _deployment("10"))
    assert converger.observe(hpa, "hub") == "none"  # an autoscaler's status is not ours


async def test_certificate_checks_are_scheduled_at_renewal_at_most_an_hour_ahead() -> None:
    converger = reconcile.Converger(None, "1.0")  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    key = ("ns", "hub")
    converger._schedule_renewal(key, reconcile._now() + datetime.timedelta(minutes=10))
    assert 590 <= converger._renewals[key].when() - loop.time() <= 600
    converger._schedule_renewal(key, reconcile._now() + datetime.timedelta(days=300))
    assert converger._renewals[key].when() - loop.time() <= reconcile.RENEWAL_CHECK
    converger._schedule_renewal(key, None)
    assert key not in converger._renewals
    converger.close()


def test_liveness_lists_what_the_operator_watches() -> None:
    clusters = "/apis/semantest.io/v1alpha1"
    assert main.watched_paths([]) == [f"{clusters}/semantestclusters"]
    assert main.watched_paths(["team-*", "ops"]) == [
        "/api/v1/namespaces", f"{clusters}/namespaces/ops/semantestclusters"]
