#!/usr/bin/env python3
"""Checks for the compose stack test (scripts/stack-test.sh), each printing what it saw.

  stack_check.py evaluate REWARD_URL TEST.jsonl valid|invalid [--within SECONDS]
      Scores completions through deploy/fireworks/evaluator.py (the Fireworks shim) against the
      reward service. `valid`: the gold SQL scores 1 and a wrong one 0, all with is_score_valid
      true (retried until SECONDS pass, for a service that is coming back). `invalid`: every
      answer has is_score_valid false (the MCP server is down), never a silent 0.
  stack_check.py trace SPANS.jsonl [--from-rollout] [--within SECONDS]
      Finds one trace with a reward-service span and an MCP `tool_call` span whose parent is a
      span of the reward service: one evaluation, one trace across both containers. With
      --from-rollout, the reward span must descend from a rollout worker's `rollout.round` span.
  stack_check.py loop METRICS.jsonl --steps N --log TRAINER.log --workers N
      The loop's trainer wrote N steps, each trained on a batch a rollout worker made, and its log
      names N rollout worker addresses (one name resolved to each replica).
  stack_check.py train METRICS.jsonl --steps N --reward NAME
      The trainer wrote N steps and every completion of every step got a valid score from reward
      NAME (an unreachable reward service would leave invalid scores).
"""
import argparse
import importlib.util
import json
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def records(path, n=3):
    lines = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    if len(lines) < n:
        sys.exit(f"{path} has {len(lines)} records; the stack test needs {n}")
    return lines[:n]


def load_shim(url):
    spec = importlib.util.spec_from_file_location("evaluator", ROOT / "deploy/fireworks/evaluator.py")
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    shim.REWARD_SERVICE_URL = url
    shim.TIMEOUT_SECONDS = 20
    return shim


def score_all(shim, test):
    results = []
    for record in records(test):
        prompt = [m for m in record["messages"] if m["role"] != "assistant"]
        for answer, expect in ((record["sql"], 1.0), ("SELECT 42 AS wrong_answer", 0.0)):
            messages = prompt + [{"role": "assistant", "content": f"<sql>{answer}</sql>"}]
            results.append((expect, shim.evaluate(messages, record["ground_truth"])))
    return results


def evaluate(args):
    shim = load_shim(args.url)
    deadline = time.monotonic() + args.within
    while True:
        results = score_all(shim, args.test)
        if args.want == "invalid":
            bad = [r for _, r in results if r["is_score_valid"]]
        else:
            bad = [(e, r) for e, r in results if not r["is_score_valid"] or r["score"] != e]
        if not bad:
            break
        if time.monotonic() >= deadline:
            print(f"FAIL: wanted {args.want} scores; got {json.dumps(bad)[:2000]}")
            return 1
        time.sleep(1)
    example = results[0][1]
    print(f"{len(results)} evaluations {args.want} (first: score={example['score']} "
          f"is_score_valid={example['is_score_valid']} reason={example['reason'][:120]!r})")
    return 0


def ancestors(span, by_id):
    parent = by_id.get(span["parent_span_id"])
    while parent:
        yield parent
        parent = by_id.get(parent["parent_span_id"])


def trace(args):
    deadline = time.monotonic() + args.within
    path = pathlib.Path(args.spans)
    want = "rollout -> reward -> mcp" if args.from_rollout else "reward -> mcp"
    while True:
        spans = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        by_id = {s["span_id"]: s for s in spans}
        for span in spans:
            parent = by_id.get(span["parent_span_id"])
            if not (span["service"] == "sqlrft-mcp" and span["name"] == "tool_call" and parent
                    and parent["service"] == "sqlrft-reward" and parent["trace_id"] == span["trace_id"]):
                continue
            round_ = next((a for a in ancestors(parent, by_id)
                           if a["service"] == "sqlrft-rollout" and a["name"] == "rollout.round"), None)
            if args.from_rollout and not round_:
                continue
            services = sorted({s["service"] for s in spans if s["trace_id"] == span["trace_id"]})
            start = "rollout.round (rollout) -> " if round_ else ""
            print(f"trace {span['trace_id']} spans {services}: "
                  f"{start}{parent['name']} (reward) -> tool_call (mcp)")
            return 0
        if time.monotonic() >= deadline:
            services = sorted({s["service"] for s in spans})
            print(f"FAIL: no trace spans {want} among {len(spans)} spans from {services}")
            return 1
        time.sleep(0.5)


def loop(args):
    steps = [json.loads(line) for line in pathlib.Path(args.metrics).read_text().splitlines() if line.strip()]
    batches = [s.get("rollout") or {} for s in steps]
    makers = sorted({b.get("worker") for b in batches if b.get("worker")})
    if len(steps) != args.steps or len(makers) == 0 or any(not b.get("worker") for b in batches):
        print(f"FAIL: wanted {args.steps} steps each on a worker's batch; got {json.dumps(steps)[:2000]}")
        return 1
    # Without colour codes: a terminal-style log puts them between a field's name and its value.
    log = re.sub(r"\x1b\[[0-9;]*m", "", pathlib.Path(args.log).read_text())
    addresses = sorted(set(re.findall(r"worker\W+http://(\d+\.\d+\.\d+\.\d+:\d+)", log)))
    if len(addresses) != args.workers:
        print(f"FAIL: the trainer's log names rollout workers {addresses}, wanted {args.workers}:")
        print(log[-3000:])
        return 1
    print(f"{len(steps)} steps on batches from {makers}; the trainer found workers {addresses}")
    return 0


def train(args):
    steps = [json.loads(line) for line in pathlib.Path(args.metrics).read_text().splitlines() if line.strip()]
    scored = [s.get("rewards", {}).get(args.reward) for s in steps]
    if len(steps) != args.steps or any(r is None or r.get("invalid_fraction") != 0 for r in scored):
        print(f"FAIL: wanted {args.steps} steps, every completion validly scored by {args.reward}; "
              f"got {json.dumps(steps)[:2000]}")
        return 1
    means = [round(r["mean"], 3) for r in scored]
    print(f"{len(steps)} steps, every completion scored by {args.reward} (means {means})")
    return 0


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("evaluate")
    p.add_argument("url")
    p.add_argument("test")
    p.add_argument("want", choices=["valid", "invalid"])
    p.add_argument("--within", type=float, default=0)
    p = sub.add_parser("trace")
    p.add_argument("spans")
    p.add_argument("--from-rollout", action="store_true")
    p.add_argument("--within", type=float, default=15)
    p = sub.add_parser("loop")
    p.add_argument("metrics")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--workers", type=int, required=True)
    p = sub.add_parser("train")
    p.add_argument("metrics")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--reward", required=True)
    args = parser.parse_args()
    return {"evaluate": evaluate, "trace": trace, "loop": loop, "train": train}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
