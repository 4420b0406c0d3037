#!/usr/bin/env python3
"""Serve a DuckDB file with mcp-server-motherduck 0.8.1 exactly as the RFT tutorial does (section 9),
so `sqlrft bench mcp --peer URL` can measure it in the same run.

usage: run_motherduck.py DB.duckdb PORT
needs: pip install mcp-server-motherduck==0.8.1 "mcp==1.30.0" uvicorn starlette  (newer mcp lacks Server.list_resources)
and a database file written by duckdb 1.4.x (the peer cannot read a DuckDB 2.0 file): make it with
make_openflights_db.py under the duckdb==1.4.3 of ci-requirements.txt
"""
import contextlib
import sys

import uvicorn
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_server_motherduck import build_application
from starlette.applications import Starlette
from starlette.routing import Mount

DB, PORT = sys.argv[1], int(sys.argv[2])
server, _ = build_application(db_path=DB, read_only=True)
sessions = StreamableHTTPSessionManager(app=server, event_store=None, stateless=True)


async def handler(scope, receive, send):
    await sessions.handle_request(scope, receive, send)


@contextlib.asynccontextmanager
async def lifespan(app):
    async with sessions.run():
        yield


app = Starlette(routes=[Mount("/mcp", app=handler)], lifespan=lifespan)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
