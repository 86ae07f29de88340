"""The `semantest-operator` command: kopf with peering, so two replicas never both act.

Peering (kopf's, through a `ClusterKopfPeering`, or a `KopfPeering` per namespace with
`--namespace`) is on by default: of the running replicas, only the one with the highest priority
works; the others wait and take over when its keep-alive lapses. The peering object must exist
(the Helm chart creates it); `--standalone` turns peering off for a single replica.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence

import kopf

from semantest_operator import (
    autopilot,
    handlers,  # noqa: F401  (importing registers the handlers)
    resources,
)

LOG_FORMATS = {"full": kopf.LogFormat.FULL, "plain": kopf.LogFormat.PLAIN,
               "json": kopf.LogFormat.JSON}


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; every option has a default that suits one operator per cluster."""
    parser = argparse.ArgumentParser(
        prog="semantest-operator",
        description="Reconcile SemantestCluster resources into running Semantest hubs.",
    )
    parser.add_argument(
        "-n", "--namespace", action="append", default=[], metavar="NS",
        help="serve only this namespace (repeatable; globs like 'team-*'); default: all",
    )
    parser.add_argument(
        "--peering", default="semantest", metavar="NAME",
        help="the kopf peering object shared by the replicas (default: %(default)s)",
    )
    parser.add_argument(
        "--standalone", action="store_true",
        help="run without peering (only safe with a single replica)",
    )
    parser.add_argument(
        "--priority", type=int, default=None,
        help="peering priority; the highest works, the others wait (default: random)",
    )
    parser.add_argument(
        "--liveness", metavar="URL", default=None,
        help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--autopilot-interval", type=float, default=autopilot.INTERVAL_S, metavar="SECONDS",
        help="how often the auto-pilot reads gateway load (default: %(default)s)",
    )
    parser.add_argument("--log-format", choices=sorted(LOG_FORMATS), default="full")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def watched_paths(namespaces: Sequence[str]) -> list[str]:
    """What the liveness probe lists: the SemantestClusters of every served namespace (or of
    all), and the namespaces themselves where a glob must be matched against them."""
    clusters = f"/apis/{resources.GROUP}/{resources.VERSION}"
    if not namespaces:
        return [f"{clusters}/{resources.PLURAL}"]
    paths = []
    for namespace in namespaces:
        if any(char in namespace for char in "*?[!"):
            paths.append("/api/v1/namespaces")
        else:
            paths.append(f"{clusters}/namespaces/{namespace}/{resources.PLURAL}")
    return sorted(set(paths))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the operator until SIGTERM/SIGINT."""
    args = parse(argv)
    kopf.configure(verbose=args.verbose, log_format=LOG_FORMATS[args.log_format], log_prefix=True)
    priority = args.priority
    if priority is None:
        priority = random.SystemRandom().randint(1, 2**31 - 1)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone,
        peering_name=None if args.standalone else args.peering,
        priority=priority,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(watched_paths=watched_paths(args.namespace),
                       autopilot_interval=args.autopilot_interval),
    )
