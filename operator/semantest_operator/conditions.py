"""Status conditions: what the observed children mean for the SemantestCluster.

Pure functions, no I/O. Conditions follow `metav1.Condition` (type, status, reason, message,
lastTransitionTime, observedGeneration); `lastTransitionTime` moves only when the status flips,
so an unchanged world writes an unchanged status and never wakes anyone up.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
REDIS_READY = "RedisReady"
TLS_READY = "TLSReady"
TYPES = (READY, PROGRESSING, DEGRADED, REDIS_READY, TLS_READY)


@dataclass(frozen=True)
class Condition:
    """One condition before it is stamped with times and generations."""

    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Problem:
    """Why the operator cannot (or will not) make the spec real.

    `permanent`: only a spec change can fix it (the API server rejected what the spec implies);
    otherwise something outside the spec must appear (a Secret, cert-manager) and the operator
    retries by itself.
    """

    reason: str
    message: str
    permanent: bool = False


@dataclass(frozen=True)
class Workload:
    """What a Deployment or StatefulSet reports, reduced to what readiness needs."""

    desired: int
    ready: int
    available: int
    updated: int
    current: bool  # the controller has seen the latest spec

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Workload:
        """Read a Deployment or StatefulSet as returned by the API server."""
        status = obj.get("status") or {}
        ready = int(status.get("readyReplicas") or 0)
        available = status.get("availableReplicas")
        return cls(
            desired=int((obj.get("spec") or {}).get("replicas", 1)),
            ready=ready,
            available=ready if available is None else int(available),
            updated=int(status.get("updatedReplicas") or 0),
            current=int(status.get("observedGeneration") or 0)
            >= int(obj["metadata"].get("generation") or 0),
        )

    @property
    def settled(self) -> bool:
        """Rolled out with every desired replica available; scaled to zero counts as settled
        (the spec asked for no pods, and there are none)."""
        return self.current and self.updated >= self.desired and self.available >= self.desired


def redis_condition(redis: Workload | None, external_url: str | None) -> Condition:
    """RedisReady: the managed StatefulSet serves, or an external Redis is configured."""
    if external_url is not None:
        return Condition(REDIS_READY, True, "External", f"using the external Redis {external_url}")
    if redis is not None and redis.ready >= 1:
        return Condition(REDIS_READY, True, "Running", "the managed Redis is ready")
    return Condition(REDIS_READY, False, "Starting", "waiting for the managed Redis pod")


def evaluate(
    workloads: Mapping[str, Workload],
    redis: Condition,
    tls: Condition,
    tls_enabled: bool,
    problem: Problem | None,
) -> list[Condition]:
    """All five conditions from the components' state, Redis, TLS and the blocking problem."""
    if problem is not None:
        return [
            Condition(READY, False, problem.reason, problem.message),
            Condition(PROGRESSING, False, problem.reason, "nothing changes until this is fixed"),
            Condition(DEGRADED, True, problem.reason, problem.message),
            redis,
            tls,
        ]
    waiting = [
        f"{name} {w.available}/{w.desired}" for name, w in workloads.items() if not w.settled
    ]
    progressing = (
        Condition(PROGRESSING, True, "RollingOut", "waiting for " + ", ".join(waiting))
        if waiting
        else Condition(PROGRESSING, False, "Complete", "every component is rolled out")
    )
    blockers = [c for c in (redis, tls) if not c.status and (c is redis or tls_enabled)]
    if blockers:
        ready = Condition(READY, False, blockers[0].reason, blockers[0].message)
    elif waiting:
        ready = Condition(READY, False, "ComponentsNotReady", progressing.message)
    else:
        idle = [name for name, w in workloads.items() if w.desired == 0]
        note = f" ({', '.join(idle)} scaled to 0)" if idle else ""
        ready = Condition(READY, True, "AllComponentsReady", f"the hub serves{note}")
    degraded = Condition(DEGRADED, False, "AsExpected", "the spec is fully applied")
    return [ready, progressing, degraded, redis, tls]


def phase(conditions: Iterable[Condition]) -> str:
    """Degraded, Ready or Progressing, for `kubectl get -o wide` and humans."""
    state = {c.type: c.status for c in conditions}
    if state.get(DEGRADED):
        return "Degraded"
    return "Ready" if state.get(READY) else "Progressing"


def stamp(
    previous: Sequence[Mapping[str, Any]],
    current: Iterable[Condition],
    generation: int,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """The status.conditions list: keeps lastTransitionTime unless the status flipped."""
    before = {c.get("type"): c for c in previous}
    stamped = []
    for condition in current:
        status = "True" if condition.status else "False"
        old = before.get(condition.type)
        since = (
            old["lastTransitionTime"]
            if old and old.get("status") == status and old.get("lastTransitionTime")
            else now.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        stamped.append(
            {
                "type": condition.type,
                "status": status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return stamped
