"""The pure parts of a pass: who owns a child, who owns a field, the command line."""

from __future__ import annotations

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
