#!/usr/bin/env python3
"""Drive sqlrft's MCP server through the official Python `mcp` SDK over streamable HTTP, as MCP hosts do
(the checks, shared with the stdio session, are in session_checks.py).

usage: sdk_session.py URL SQL EXPECTED_JSON
  EXPECTED_JSON: the structuredContent the test computed for SQL through the Rust pool.
Prints `N passed, M failed` and exits non-zero on any failure.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from session_checks import check_session


async def run(url: str, sql: str, expected: dict) -> int:
    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            return await check_session(session, sql, expected)


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))
