#!/usr/bin/env python3
"""Start sqlrft as an MCP host does (a child process speaking JSON-RPC on stdin/stdout) through
the official Python `mcp` SDK's stdio client, and check the same things as over HTTP, including
the typed-result checks of ../shared/acceptance/mcp_sdk_client.py --structured.

usage: sdk_stdio_session.py EXPECTED_JSON COMMAND [ARG...]
  EXPECTED_JSON: {"sql": SQL, "structured": the structuredContent the test computed for SQL}
  COMMAND ARG...: what the host's config says to run (e.g. sqlrft mcp serve --transport stdio ...)
The child gets this process's environment (the SDK would otherwise pass only HOME, PATH, ...).
Prints `N passed, M failed` and exits non-zero on any failure.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def run(expected: dict, command: str, args: list[str]) -> int:
    failures = []
    checks = 0

    def check(ok: bool, what: str) -> None:
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(what)

    server = StdioServerParameters(command=command, args=args, env=dict(os.environ))
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.serverInfo.name == "sqlrft", f"server name {init.serverInfo.name!r}")
            tools = {t.name: t for t in (await session.list_tools()).tools}
            check(set(tools) == {"query", "list_tables", "describe_table"}, f"tools {sorted(tools)}")
            check(bool(tools["query"].outputSchema), "`query` declares no outputSchema")

            result = await session.call_tool("query", {"query": expected["sql"]})
            check(not result.isError, f"query failed: {result}")
            check(result.structuredContent == expected["structured"],
                  f"structuredContent {result.structuredContent} != {expected['structured']}")

            # mcp_sdk_client.py --structured: text and typed rows of one known row.
            typed = await session.call_tool("query", {"query": "SELECT 42 AS answer, 'x' AS s, NULL AS n"})
            text = typed.content[0].text if typed.content else ""
            check(not typed.isError and "42" in text, f"SELECT 42 failed: {typed}")
            sc = typed.structuredContent or {}
            check({"columns", "rows"} <= set(sc) and sc["rows"] == [[42, "x", None]],
                  f"structuredContent is not columns + rows [[42, 'x', None]]: {sc}")
            missing = await session.call_tool("query", {"query": "SELECT * FROM no_such_table"})
            check(missing.isError, "a failing query is not reported with isError")

            refused = await session.call_tool("query", {"query": "DROP TABLE airlines"})
            check(refused.isError and "Refused" in refused.content[0].text, f"DROP was not refused: {refused}")
            listed = await session.call_tool("list_tables", {})
            names = [t["name"] for t in (listed.structuredContent or {}).get("tables", [])]
            check("airlines" in names, f"list_tables: {names}")
            described = await session.call_tool("describe_table", {"table": "airlines"})
            check((described.structuredContent or {}).get("name") == "airlines", f"describe_table: {described}")
    for failure in failures:
        print("FAIL", failure)
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:])))
