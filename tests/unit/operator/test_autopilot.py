"""The auto-pilot's rule (the HPA's, on open connections) and how it reads a hub's /metrics."""

from __future__ import annotations

from semantest_operator.autopilot import Reading, Window, connections, recommend


def reading(*per_pod: int, pods: int | None = None) -> Reading:
    counts = {f"gw-{i}": n for i, n in enumerate(per_pod)}
    return Reading(len(per_pod) if pods is None else pods, len(per_pod), sum(per_pod), counts)


def test_replicas_rise_to_carry_the_connections_at_the_target() -> None:
    assert recommend(2, reading(9, 9), target=6, low=1, high=10) == 3  # ceil(18 / 6)


def test_a_rise_is_at_most_a_doubling_or_four_more() -> None:
    assert recommend(1, reading(100), target=1, low=1, high=50) == 5
    assert recommend(8, reading(*[100] * 8), target=1, low=1, high=50) == 16


def test_within_ten_percent_of_the_target_nothing_moves() -> None:
    assert recommend(3, reading(6, 6, 7), target=6, low=1, high=10) == 3  # 19 / 18
    assert recommend(3, reading(5, 6, 6), target=6, low=1, high=10) == 3  # 17 / 18


def test_replicas_stay_within_min_and_max() -> None:
    assert recommend(4, reading(0, 0, 0, 0), target=6, low=2, high=10) == 2
    assert recommend(4, reading(60, 60, 60, 60), target=6, low=2, high=6) == 6


def test_pods_not_read_count_as_empty_for_a_rise_and_forbid_a_fall() -> None:
    # two pods starting: a rise counts them empty (30 on 3 pods, not 30 on the one read)
    assert recommend(3, reading(30, pods=3), target=6, low=1, high=10) == 5
    assert recommend(3, reading(12, pods=3), target=6, low=1, high=10) == 3
    # one pod unread: no fall, whatever the others say
    assert recommend(3, reading(0, 0, pods=3), target=6, low=1, high=10) == 3


def test_a_fall_waits_for_the_stabilization_window() -> None:
    window = Window()
    assert window.stabilize(0.0, 5, seconds=300) == 5
    assert window.stabilize(15.0, 2, seconds=300) == 5  # still within the window of the 5
    assert window.stabilize(299.0, 2, seconds=300) == 5
    assert window.stabilize(316.0, 2, seconds=300) == 2  # the 5 is out of the window
    assert window.stabilize(330.0, 7, seconds=300) == 7  # a rise is at once


def test_open_connections_are_read_from_the_exposition_format() -> None:
    text = (
        "# HELP websocket_connections_active Open WebSocket connections\n"
        "# TYPE websocket_connections_active gauge\n"
        'websocket_connections_active{role="extension"} 3.0\n'
        'websocket_connections_active{role="client"} 4.0\n'
        "# HELP websocket_connections_total Total WebSocket connections\n"
        "# TYPE websocket_connections_total counter\n"
        "websocket_connections_total 99.0\n"
    )
    assert connections(text) == 7
    assert connections("") == 0
