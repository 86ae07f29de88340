"""The Semantest operator: reconciles `SemantestCluster` resources into running hubs.

Modules: handlers (every kopf registration), reconcile (the one idempotent pass), resources
(pure spec-to-manifest builders), conditions (status), tls (self-signed certificates), apply
(the API client), main (the `semantest-operator` command). Nothing here imports the hub's
services: the operator only knows their command names, ports, routes and configuration keys.
"""
