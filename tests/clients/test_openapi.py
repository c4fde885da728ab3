"""The OpenAPI document, checked by a real validator and against the routes it names."""

import json

from openapi_spec_validator import validate


def test_the_document_is_valid_openapi_3_1(server):
    status, content_type, text = server.get("/api/v1/openapi.json")
    assert status == 200 and content_type.startswith("application/json")
    document = json.loads(text)
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises with the first problem it finds
    assert document["components"]["securitySchemes"]["api_key"]["scheme"] == "bearer"


def test_every_documented_get_route_is_served(server):
    document = json.loads(server.get("/api/v1/openapi.json")[2])
    for path, item in document["paths"].items():
        if "get" not in item:
            continue
        concrete = path.replace("{name}", "users")
        required = [p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query" and p.get("required")]
        if required:
            concrete += "?" + "&".join(f"{name}=revenue" for name in required)
        secured = bool(item["get"].get("security"))
        if "{id}" in path:
            # A thread id that does not exist: the handler itself answers its documented 404.
            status, _, body = server.get(path.replace("{id}", "t0"), server.keys["admin"])
            assert status == 404 and "no thread 't0' of yours" in json.loads(body)["message"], f"GET {path}: {status} {body[:300]}"
            continue
        status, _, body = server.get(concrete, server.keys["admin"] if secured else None)
        assert status == 200, f"GET {path}: {status} {body[:300]}"


def test_the_api_page_is_served_offline(server):
    status, content_type, html = server.get("/api")
    assert status == 200 and content_type.startswith("text/html")
    assert "/api/v1/openapi.json" in html
    # Nothing is fetched from another host.
    assert "http://" not in html and "https://" not in html
