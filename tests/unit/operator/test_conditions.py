"""Status conditions follow metav1.Condition and say what the children really do."""

from __future__ import annotations

import datetime

from semantest_operator import conditions
from semantest_operator.conditions import Condition, Problem, Workload

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
TLS_OFF = Condition(conditions.TLS_READY, False, "Disabled", "off")
REDIS_UP = Condition(conditions.REDIS_READY, True, "Running", "up")


def deployment(replicas: int, ready: int, generation: int = 2, observed: int = 2) -> dict:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "readyReplicas": ready,
                   "availableReplicas": ready, "updatedReplicas": replicas},
    }


def by_type(evaluated: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in evaluated}


def test_workload_reads_deployment_status() -> None:
    w = Workload.of(deployment(3, 2))
    assert (w.desired, w.ready, w.available, w.updated, w.current) == (3, 2, 2, 3, True)
    assert not w.settled
    assert Workload.of(deployment(3, 3)).settled
    assert not Workload.of(deployment(3, 3, generation=3, observed=2)).settled
    assert Workload.of(deployment(0, 0)).settled  # scaled to zero, as the spec asks


def test_workload_without_status_is_not_ready() -> None:
    w = Workload.of({"metadata": {"generation": 1}, "spec": {"replicas": 2}})
    assert (w.ready, w.available, w.current) == (0, 0, False)


def test_all_settled_means_ready() -> None:
    workloads = {"gateway": Workload.of(deployment(2, 2)), "router": Workload.of(deployment(1, 1))}
    result = by_type(conditions.evaluate(workloads, REDIS_UP, TLS_OFF, False, None))
    assert result["Ready"].status and result["Ready"].reason == "AllComponentsReady"
    assert not result["Progressing"].status
    assert not result["Degraded"].status
    assert conditions.phase(result.values()) == "Ready"


def test_rolling_out_names_the_components_it_waits_for() -> None:
    workloads = {"gateway": Workload.of(deployment(2, 1)), "router": Workload.of(deployment(1, 1))}
    result = by_type(conditions.evaluate(workloads, REDIS_UP, TLS_OFF, False, None))
    assert not result["Ready"].status
    assert result["Progressing"].status
    assert result["Progressing"].message == "waiting for gateway 1/2"
    assert conditions.phase(result.values()) == "Progressing"


def test_redis_and_enabled_tls_block_readiness() -> None:
    workloads = {"gateway": Workload.of(deployment(1, 1))}
    redis_down = conditions.redis_condition(None, None)
    assert not by_type(conditions.evaluate(workloads, redis_down, TLS_OFF, False, None))[
        "Ready"
    ].status
    tls_waiting = Condition(conditions.TLS_READY, False, "WaitingForCertificate", "wait")
    ready = by_type(conditions.evaluate(workloads, REDIS_UP, tls_waiting, True, None))["Ready"]
    assert (ready.status, ready.reason) == (False, "WaitingForCertificate")


def test_external_redis_is_ready_by_configuration() -> None:
    condition = conditions.redis_condition(None, "redis://cache:6379")
    assert condition.status and condition.reason == "External"


def test_a_problem_is_degraded_everywhere() -> None:
    problem = Problem("SecretNotFound", "Secret x named in the spec does not exist")
    result = by_type(conditions.evaluate({}, REDIS_UP, TLS_OFF, False, problem))
    assert result["Degraded"].status and result["Degraded"].reason == "SecretNotFound"
    assert (result["Ready"].status, result["Ready"].reason) == (False, "SecretNotFound")
    assert not result["Progressing"].status
    assert conditions.phase(result.values()) == "Degraded"


def test_stamp_keeps_transition_time_until_status_flips() -> None:
    first = conditions.stamp([], [Condition("Ready", False, "Starting", "wait")], 1, NOW)
    assert first == [{"type": "Ready", "status": "False", "reason": "Starting",
                      "message": "wait", "lastTransitionTime": "2026-01-02T03:04:05Z",
                      "observedGeneration": 1}]
    later = NOW + datetime.timedelta(minutes=5)
    same = conditions.stamp(first, [Condition("Ready", False, "Other", "still")], 2, later)
    assert same[0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert same[0]["observedGeneration"] == 2
    flipped = conditions.stamp(first, [Condition("Ready", True, "Up", "ok")], 2, later)
    assert flipped[0]["lastTransitionTime"] == "2026-01-02T03:09:05Z"
