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

from session_checks import check_session


async def run(expected: dict, command: str, args: list[str]) -> int:
    server = StdioServerParameters(command=command, args=args, env=dict(os.environ))
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            return await check_session(session, expected["sql"], expected["structured"])


if __name__ == "__main__":
    sys.exit(asyncio.run(run(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:])))
