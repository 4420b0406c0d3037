#!/usr/bin/env python3
"""Render tables with Python's tabulate (tablefmt="pretty"), as mcp-server-motherduck does.

usage: tabulate_tables.py IN.json   IN: [{"headers": [...], "rows": [[str|null, ...], ...]}, ...]
Prints a JSON list with one rendered table per input.
"""
import json
import sys

from tabulate import tabulate

tables = json.load(open(sys.argv[1], encoding="utf-8"))
print(json.dumps([tabulate(t["rows"], headers=t["headers"], tablefmt="pretty") for t in tables]))
