#!/usr/bin/env python3
"""The RFT tutorial's own `evaluate` (section 12 of the seed text, exec'd unchanged, as
../shared/acceptance/tutorial_evaluator.py loads it) timed against an MCP server, for
`sqlrft bench reward`.

usage: tutorial_peer.py MCP_BASE_URL SEED_TEXT CASES.json EVALUATIONS THREADS
  MCP_BASE_URL without /mcp/; CASES.json: [{"candidate": SQL, "ground_truth": [row objects]}]
prints one JSON line: {"evaluations", "seconds", "per_second", "scored_one"}
needs: requests
"""
import json
import pathlib
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def tutorial_evaluate(seed: pathlib.Path, server_url: str):
    text = seed.read_text(encoding="utf-8")
    section = text[text.index("## 12."):text.index("## 13.")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "tutorial-section-12", "exec"), namespace)
    namespace["MCP_SERVER_URL"] = server_url
    return namespace["evaluate"]


def main() -> int:
    url, seed, cases_file = sys.argv[1].rstrip("/"), pathlib.Path(sys.argv[2]), sys.argv[3]
    total, threads = int(sys.argv[4]), int(sys.argv[5])
    cases = json.loads(pathlib.Path(cases_file).read_text())
    evaluate = tutorial_evaluate(seed, url)

    def one(i: int) -> float:
        case = cases[i % len(cases)]
        messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": case["candidate"]}]
        return evaluate(messages, case["ground_truth"]).get("score", 0)

    one(0)  # warm up
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        scores = list(pool.map(one, range(total)))
    seconds = time.perf_counter() - started
    print(json.dumps({"evaluations": total, "seconds": seconds, "per_second": total / seconds,
                      "scored_one": sum(1 for s in scores if s == 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
