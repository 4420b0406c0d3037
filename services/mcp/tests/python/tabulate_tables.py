#!/usr/bin/env python3
"""Render tables with Python's tabulate (tablefmt="pretty"), as mcp-server-motherduck does.

usage: tabulate_tables.py IN.json   IN: [{"headers": [...], "rows": [[str|null, ...], ...]}, ...]
Prints a JSON list with one rendered table per input.
"""
import json
import sys

import tabulate as tabulate_module
from tabulate import tabulate

# mcp-server-motherduck 0.8.1 does not depend on wcwidth, so its tabulate measures cells in code
# points. Other packages in this venv (eval-protocol -> questionary -> prompt_toolkit) install
# wcwidth, which would switch tabulate to terminal column widths for East Asian text.
tabulate_module.WIDE_CHARS_MODE = False

tables = json.load(open(sys.argv[1], encoding="utf-8"))
print(json.dumps([tabulate(t["rows"], headers=t["headers"], tablefmt="pretty") for t in tables]))
