"""The metric names of DESIGN §3.7 are contract: names, types and labels in the exposition."""

from __future__ import annotations

from semantest.telemetry import create_metrics


def test_contract_names_types_and_labels() -> None:
    metrics = create_metrics()
    metrics.connections.add(1, {"type": "client"})
    metrics.connections_active.add(1, {"type": "extension"})
    metrics.messages.add(2, {"direction": "inbound"})
    metrics.messages.add(1, {"direction": "outbound"})
    metrics.commands.add(1, {"type": "NAVIGATE", "outcome": "success"})
    metrics.commands_in_flight.add(1)
    metrics.commands_in_flight.add(-1)
    metrics.command_duration.record(0.004)
    metrics.bus_errors.add(1, {"stream": "commands"})
    text = metrics.exposition().decode()
    expected = {
        "websocket_connections_total": "counter",
        "websocket_connections_active": "gauge",
        "websocket_messages_total": "counter",
        "semantest_commands_total": "counter",
        "semantest_command_duration_seconds": "histogram",
        "semantest_commands_in_flight": "gauge",
        "semantest_bus_errors_total": "counter",
    }
    for name, kind in expected.items():
        assert f"# TYPE {name} {kind}" in text, name
    assert 'websocket_connections_total{type="client"} 1.0' in text
    assert 'websocket_messages_total{direction="inbound"} 2.0' in text
    assert 'semantest_commands_total{outcome="success",type="NAVIGATE"} 1.0' in text
    assert "semantest_commands_in_flight 0.0" in text
    assert 'semantest_command_duration_seconds_bucket{le="0.005"} 1.0' in text
