"""MCP with the official Python SDK: Streamable HTTP at /mcp (the API key as bearer) and
`quarry mcp` on stdio (the key from QUARRY_API_KEY), each tool, a refusal, a wrong key."""

import json
import os
import re
import subprocess

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from conftest import BIN, REPO

TOOLS = {"ask", "run_sql", "search_tables", "search_queries", "describe_table"}


def structured(result) -> dict:
    """The tool result's JSON (structured content, else its text)."""
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


async def over_http(server, key, work):
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(300.0)) as http:
        async with streamable_http_client(server.base + "/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)


async def check_tools(session, analyst: bool):
    listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.destructive_hint is False, tool.name
        assert len(tool.description) < 160, f"{tool.name}: keep tool text short"

    ran = await session.call_tool("run_sql", {"sql": "SELECT plan, COUNT(*) AS n FROM users GROUP BY plan ORDER BY plan"})
    assert not ran.is_error, ran
    body = structured(ran)
    assert body["result"]["columns"] == ["plan", "n"] and body["result"]["row_count"] >= 3

    refused = await session.call_tool("run_sql", {"sql": "DELETE FROM users"})
    assert refused.is_error
    error = structured(refused)
    assert error["error"] == "refused"
    assert error["violations"][0]["code"] == "not_read_only" and error["violations"][0]["hint"]

    found = structured(await session.call_tool("search_tables", {"query": "revenue by product category"}))
    names = [t["name"] for t in found["tables"]]
    assert names and {"orders", "order_items", "products"} & set(names), names

    queries = structured(await session.call_tool("search_queries", {"query": "monthly revenue", "limit": 3}))
    assert 1 <= len(queries["queries"]) <= 3

    users = structured(await session.call_tool("describe_table", {"name": "users"}))
    assert users["table"]["name"] == "users" if "table" in users else users["name"] == "users"
    missing = await session.call_tool("describe_table", {"name": "no_such_table"})
    assert missing.is_error and structured(missing)["error"] == "not_found"


def test_mcp_over_http_with_every_tool(server):
    anyio.run(over_http, server, server.keys["analyst"], lambda s: check_tools(s, True))


def test_mcp_ask_with_the_real_model_over_http(server):
    async def ask(session):
        answer = await session.call_tool("ask", {"question": "How many users are on each plan?"})
        assert not answer.is_error, answer
        body = structured(answer)
        assert "users" in body["sql"].lower() and body["result"]["row_count"] >= 3, body
        assert body["tables"][0]["evidence"], body
        assert body["confidence"]["level"] in ("high", "medium", "low"), body

    anyio.run(over_http, server, server.keys["analyst"], ask)


def test_mcp_refuses_a_wrong_key_and_audits_it(server):
    async def attempt():
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer qk_" + "0" * 64}) as http:
            response = await http.post(
                server.base + "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"

    anyio.run(attempt)
    status, _, text = server.get("/api/v1/audit?limit=20", server.keys["admin"])
    assert status == 200
    assert any(r["outcome"] == "refused" and "/mcp" in (r.get("detail") or {}).get("request", "")
               for r in json.loads(text)["records"]), text[:2000]


def test_mcp_over_stdio_as_the_key_in_the_environment(tmp_path):
    # A workspace of its own: the server's vector index is held by the server's process.
    env = {**os.environ, "QUARRY_WORKSPACE": str(tmp_path), "QUARRY_LOG": "quarry=info"}
    created = subprocess.run(
        [BIN, "keys", "create", "--name", "clients-stdio", "--role", "analyst"],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    ).stdout
    key = re.search(r"qk_[0-9a-f]+", created).group(0)
    params = StdioServerParameters(command=BIN, args=["mcp"], cwd=str(REPO), env={**env, "QUARRY_API_KEY": key})

    async def run():
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                info = await session.initialize()
                assert info.server_info.name == "quarry"
                await check_tools(session, True)

    anyio.run(run)


def test_quarry_mcp_without_a_valid_key_says_how_to_get_one(tmp_path):
    env = {**os.environ, "QUARRY_WORKSPACE": str(tmp_path)}
    env.pop("QUARRY_API_KEY", None)
    out = subprocess.run([BIN, "mcp"], cwd=REPO, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "QUARRY_API_KEY is not set" in out.stderr and "quarry keys create" in out.stderr
