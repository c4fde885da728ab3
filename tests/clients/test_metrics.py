"""/metrics as Prometheus reads it: parsed by prometheus_client's OpenMetrics parser."""

import json
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def families(server) -> dict:
    status, content_type, text = server.get("/metrics")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(family, **labels) -> float:
    for s in family.samples:
        if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith(("_created",)):
            return s.value
    raise AssertionError(f"no sample {labels} in {family.name}: {family.samples}")


def test_metrics_parse_and_count_what_happened(server):
    request = urllib.request.Request(
        server.base + "/api/v1/sql",
        data=json.dumps({"sql": "DELETE FROM users"}).encode(),
        headers={"Authorization": f"Bearer {server.keys['analyst']}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=60)
        raise AssertionError("a DELETE was not refused")
    except urllib.error.HTTPError as error:
        assert error.code == 422
    metrics = families(server)
    for name in [
        "quarry_http_requests", "quarry_http_request_duration_seconds", "quarry_asks", "quarry_sql_requests",
        "quarry_ask_stage_duration_seconds", "quarry_llm_tokens", "quarry_refusals", "quarry_llm_queue_waiting",
        "quarry_llm_generations_running", "quarry_build", "quarry_index_points",
    ]:
        assert name in metrics, f"{name} missing from {sorted(metrics)}"
    assert metrics["quarry_http_requests"].type == "counter"
    assert metrics["quarry_ask_stage_duration_seconds"].type == "histogram"
    assert sample(metrics["quarry_http_requests"], method="POST", route="/api/v1/sql", status="422") >= 1
    assert sample(metrics["quarry_refusals"], code="not_read_only") >= 1
    assert sample(metrics["quarry_sql_requests"], outcome="refused") >= 1
    assert sample(metrics["quarry_llm_queue_waiting"]) == 0
    assert sample(metrics["quarry_index_points"], kind="tables") >= 15
    build = metrics["quarry_build"].samples[0].labels
    assert build["model"] not in ("", "none", "scripted"), build
