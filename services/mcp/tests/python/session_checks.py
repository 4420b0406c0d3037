"""The checks both SDK sessions (streamable HTTP and stdio) run on an initialized `ClientSession`,
including the typed-result checks of ../shared/acceptance/mcp_sdk_client.py --structured."""


class Checks:
    """Counts checks and keeps the failed ones; `report` prints `N passed, M failed`."""

    def __init__(self) -> None:
        self.count = 0
        self.failures: list[str] = []

    def __call__(self, ok: bool, what: str) -> None:
        self.count += 1
        if not ok:
            self.failures.append(what)

    def report(self) -> int:
        for failure in self.failures:
            print("FAIL", failure)
        print(f"{self.count - len(self.failures)} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


async def check_session(session, sql: str, structured: dict) -> int:
    """Initializes `session`, runs every check, prints the summary; the exit code."""
    check = Checks()
    init = await session.initialize()
    check(init.serverInfo.name == "sqlrft", f"server name {init.serverInfo.name!r}")
    tools = {t.name: t for t in (await session.list_tools()).tools}
    check(set(tools) == {"query", "list_tables", "describe_table"}, f"tools {sorted(tools)}")
    check(bool(tools["query"].outputSchema), "`query` declares no outputSchema")

    result = await session.call_tool("query", {"query": sql})
    check(not result.isError, f"query failed: {result}")
    check(result.structuredContent == structured,
          f"structuredContent {result.structuredContent} != {structured}")

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
    return check.report()
