"""End to end: the exporter's replay scenario → a real Prometheus evaluating the shipped rules → a real
Alertmanager routing to webhook receivers run by the test (pager for critical, chat for warning).

Two exporters run side by side for the same wall time: one replays the failure scenario (a memory
leak on host-07 saturating at 3h20, a partition of host-40..42 from 1h30 to 2h), the control replays
the same fleet with nothing failing. Both run the scenario 60x faster than the wall clock, so the
shipped rules' `for:` durations are divided by 60 for this test; every expression is the shipped one.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import yaml
from conftest import (
    REPLAY_CONFIG,
    REPO,
    SPEED,
    AlertmanagerServer,
    WebhookReceiver,
    http_get,
    rules_for_test,
    storage_with,
    wait_for,
)

from aura_exporter.sources.replay import SCENARIO

pytestmark = pytest.mark.prometheus



def alertmanager_config(receiver: WebhookReceiver) -> dict:
    """The shipped example's routing tree and inhibition, with webhook receivers and short timers."""
    shipped = yaml.safe_load((REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    route = {**shipped["route"], "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
             "routes": [{**r, "group_wait": "1s", "group_interval": "1s"} for r in shipped["route"]["routes"]]}
    receivers = [{"name": r["name"], "webhook_configs": [{"url": receiver.url(f"/{r['name']}")}]}
                 for r in shipped["receivers"]]
    return {"route": route, "receivers": receivers, "inhibit_rules": shipped["inhibit_rules"]}


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def test_replayed_failures_page_before_they_happen_and_the_healthy_control_stays_quiet(
        tmp_path, trained, exporters, prometheus_servers, webhook):
    common = [f"--config.file={REPLAY_CONFIG}", f"--replay.speed={SPEED:g}", "--replay.offset=0s", "--topology.workers=1"]
    launched = time.time()
    failing = exporters(["demo", *common, f"--storage.path={storage_with(trained, tmp_path / 'failing')}"])
    control = exporters(["demo", *common, f"--storage.path={storage_with(trained, tmp_path / 'control')}",
                         "--replay.scenario=healthy"])
    alertmanager = AlertmanagerServer(tmp_path, alertmanager_config(webhook))
    try:
        prometheus_servers(
            scrape_targets={"aura-failing": f"127.0.0.1:{failing.port}", "aura-control": f"127.0.0.1:{control.port}"},
            rule_files=[rules_for_test(failing.url, tmp_path / "rules.yml")], alertmanager=alertmanager.address)

        def paged(alertname: str, job: str) -> list[tuple[float, dict]]:
            return [(t, a) for t, a in webhook.alerts("/pager")
                    if a["labels"]["alertname"] == alertname and a["labels"].get("job") == job]

        leak = wait_for(lambda: [(t, a) for t, a in paged("AuraFailurePredicted", "aura-failing")
                                 if a["labels"].get("instance") == "host-07"],
                        SCENARIO.saturation / SPEED + 60, interval=1, what="AuraFailurePredicted for host-07")
        arrived, alert = leak[0]
        # The scenario clock started after `launched`, so this overestimates how far the scenario was.
        scenario_seconds = (arrived - launched) * SPEED
        assert scenario_seconds < SCENARIO.saturation, f"paged {scenario_seconds / 60:.0f} min into the scenario"

        description = alert["annotations"]["description"]
        assert "memory reaches its limit in" in description and "resources" in description, description
        status, _, body = http_get(alert["annotations"]["explanation_url"])
        assert status == 200, body
        explanation = json.loads(body)["data"]["explanation"]
        assert explanation["decision"] == "critical" and "memory" in explanation["summary"]
        assert explanation["actions"], explanation

        def partitioned() -> set[str]:
            return {a["labels"]["instance"] for _, a in paged("AuraFleetPartition", "aura-failing")}

        expected = {f"host-{h}" for h in SCENARIO.partition_hosts}
        deadline = launched + SCENARIO.partition_end / SPEED + 30
        wait_for(lambda: partitioned() >= expected, max(1.0, deadline - time.time()), interval=1,
                 what="AuraFleetPartition for the partitioned hosts")
        assert partitioned() == expected

        critical_in_control = [a["labels"] for _, a in webhook.alerts("/pager")
                               if a["labels"].get("job") == "aura-control"]
        assert critical_in_control == []
        warned_in_control = [a["labels"] for _, a in webhook.alerts("/chat")
                             if a["labels"].get("job") == "aura-control" and a["labels"]["alertname"] == "AuraCouncilWarning"]
        assert warned_in_control == []  # nor warns in chat
        assert "forecaster loaded" in control.log() and "forecaster loaded" in failing.log()
    finally:
        alertmanager.stop()


def test_alertmanager_lists_the_firing_alerts_with_their_explanation_link(tmp_path):
    """The example routing loads into the real Alertmanager (the E2E test above exercises it)."""
    receiver = WebhookReceiver()
    alertmanager = AlertmanagerServer(tmp_path, alertmanager_config(receiver))
    try:
        alert = [{"labels": {"alertname": "AuraFailurePredicted", "severity": "critical", "analysis": "node",
                             "instance": "host-07"},
                  "annotations": {"explanation_url": "http://aura/api/v1/entities/node/by-labels?instance=host-07"}}]
        request = urllib.request.Request(f"{alertmanager.url}/api/v2/alerts", data=json.dumps(alert).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        delivered = wait_for(lambda: receiver.alerts("/pager"), 20, what="the pager receiving the alert")
        assert delivered[0][1]["annotations"]["explanation_url"].endswith("instance=host-07")
        assert receiver.alerts("/chat") == []
    finally:
        alertmanager.stop()
        receiver.close()
