"""The chart's monitoring: the Grafana dashboard ConfigMap (sidecar label) and the optional
ServiceMonitor, rendered only where the Prometheus Operator's CRDs are served. Whether each
dashboard query names a metric the hub exports is checked against a real scrape in
tests/observability/test_traces.py."""

from __future__ import annotations

import json

import kubernetes_validate

from semantest_operator import resources
from tests.chart.chart import CHART, KUBE_VERSION, Helm, find, load_all, one

SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


def test_nothing_of_monitoring_is_rendered_by_default(helm: Helm) -> None:
    objs = helm.objects(extra=["--api-versions", SERVICE_MONITOR_API])
    assert not find(objs, "ServiceMonitor")
    assert not [o for o in find(objs, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")]


def test_the_dashboard_is_a_configmap_the_grafana_sidecar_loads(helm: Helm) -> None:
    objs = helm.objects({"monitoring": {"dashboard": {"enabled": True,
                                                      "annotations": {"grafana_folder": "Hub"}}}})
    config_map = one(objs, "ConfigMap", "semantest-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Hub"}
    shipped = json.loads((CHART / "dashboards" / "semantest-hub.json").read_text())
    assert json.loads(config_map["data"]["semantest-hub.json"]) == shipped
    kubernetes_validate.validate(config_map, KUBE_VERSION, strict=True)


def test_the_service_monitor_needs_the_value_and_the_crd(helm: Helm) -> None:
    enabled = {"monitoring": {"serviceMonitor": {"enabled": True, "interval": "15s",
                                                 "labels": {"release": "kps"}}}}
    assert not find(helm.objects(enabled), "ServiceMonitor")  # no CRD served: nothing
    objs = helm.objects(enabled, extra=["--api-versions", SERVICE_MONITOR_API])
    monitor = one(objs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    # It selects what the operator labels every hub Service with, on their `metrics` port.
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector == {resources.NAME_LABEL: "semantest", **resources.OWNED}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "15s",
                        "scrapeTimeout": "10s"}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["semantest"]}


def test_a_bad_monitoring_value_is_refused_by_the_schema(helm: Helm) -> None:
    for bad in ({"serviceMonitor": {"interval": "soon"}}, {"dashboard": {"enabeld": True}},
                {"serviceMonitor": {"labels": {"release": 1}}}):
        proc = helm.template({"monitoring": bad}, check=False)
        assert proc.returncode != 0 and "monitoring" in proc.stderr, (bad, proc.stderr)


def test_every_dashboard_panel_queries_prometheus() -> None:
    dashboard = json.loads((CHART / "dashboards" / "semantest-hub.json").read_text())
    assert dashboard["uid"] == "semantest-hub"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["type"] == "prometheus" and target["expr"]


def test_rendered_objects_parse(helm: Helm) -> None:
    text = helm.template({"monitoring": {"dashboard": {"enabled": True},
                                         "serviceMonitor": {"enabled": True}}},
                         extra=["--api-versions", SERVICE_MONITOR_API]).stdout
    kinds = {o["kind"] for o in load_all(text)}
    assert {"ConfigMap", "ServiceMonitor"} <= kinds
