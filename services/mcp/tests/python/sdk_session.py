#!/usr/bin/env python3
"""Drive sqlrft's MCP server through the official Python `mcp` SDK, as MCP hosts do.

usage: sdk_session.py URL SQL EXPECTED_JSON
  EXPECTED_JSON: the structuredContent the test computed for SQL through the Rust pool.
Prints `N passed, M failed` and exits non-zero on any failure.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def run(url: str, sql: str, expected: dict) -> int:
    failures = []
    checks = 0

    def check(ok: bool, what: str) -> None:
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(what)

    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.serverInfo.name == "sqlrft", f"server name {init.serverInfo.name!r}")
            tools = {t.name: t for t in (await session.list_tools()).tools}
            check(set(tools) == {"query", "list_tables", "describe_table"}, f"tools {sorted(tools)}")
            check(bool(tools["query"].outputSchema), "query declares no outputSchema")
            result = await session.call_tool("query", {"query": sql})
            check(not result.isError, f"query failed: {result}")
            check(result.structuredContent == expected, f"structuredContent {result.structuredContent} != {expected}")
            bad = await session.call_tool("query", {"query": "DROP TABLE airlines"})
            check(bad.isError and "Refused" in bad.content[0].text, f"DROP was not refused: {bad}")
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
    sys.exit(asyncio.run(run(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
