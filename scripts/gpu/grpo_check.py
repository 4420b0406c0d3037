"""A short GRPO run through `sqlrft train` whose reward must rise: the one-run GPU check's
training step (`--device cuda` there; CI runs the same script with `--device cpu`).

Usage: python grpo_check.py --out RESULT.json [--device cuda] [--steps 20] [--work DIR] -- SQLRFT...
(e.g. `-- ./gpu-bundle/sqlrft`).

`sqlrft cuda toy-task` writes a tiny random Qwen2 model and chat prompts; this script serves a
reward any policy can learn quickly (the share of lowercase ASCII letters in a completion) over
HTTP in the reward service's batch shape, trains with full fine-tuning, and reads the run's
metrics.jsonl. It passes when the mean reward of the last quarter of steps is above the first
quarter's. Python's standard library only.
"""

import argparse
import http.server
import json
import pathlib
import subprocess
import sys
import threading
import time


def lowercase_share(text):
    return sum(c.islower() and c.isascii() for c in text) / max(len(text), 1)


class Reward(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        results = [
            {"score": lowercase_share(c), "reason": "share of lowercase letters",
             "is_score_valid": True, "metrics": {}}
            for c in body["completions"]
        ]
        data = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


CONFIG = """seed = 7
prompts_per_step = 4
full_finetune = true
save_steps = 1000
max_prompt_length = 64

[grpo]
num_generations = 8
beta = 0.0

[optim]
learning_rate = {lr}
lr_scheduler_type = "constant"

[sampling]
max_new_tokens = 12

[[rewards]]
name = "lowercase"
kind = "http"
endpoint = "{endpoint}"
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--work", default="/tmp/sqlrft-grpo-check")
    ap.add_argument("sqlrft", nargs="+", help="the sqlrft command, after --")
    args = ap.parse_args()
    work = pathlib.Path(args.work)
    run = work / "run"
    result = {"device": args.device, "steps": args.steps, "passed": False}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Reward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        subprocess.run([*args.sqlrft, "cuda", "toy-task", "--out", str(work)], check=True)
        config = work / "train.toml"
        config.write_text(CONFIG.format(
            lr=args.lr, endpoint=f"http://127.0.0.1:{server.server_address[1]}/score"))
        if run.exists():
            for f in sorted(run.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
        started = time.time()
        train = subprocess.run(
            [*args.sqlrft, "train", "--device", args.device, "--model", str(work / "model"),
             "--dataset", str(work / "prompts.jsonl"), "--config", str(config),
             "--max-steps", str(args.steps), "--output-dir", str(run), "--quiet"],
            capture_output=True, text=True)
        result["seconds"] = round(time.time() - started, 2)
        result["stderr_tail"] = train.stderr[-4000:]
        if train.returncode != 0:
            result["error"] = f"sqlrft train exited {train.returncode}"
        else:
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            rewards = [r["reward"] for r in rows]
            q = max(len(rewards) // 4, 1)
            first, last = sum(rewards[:q]) / q, sum(rewards[-q:]) / q
            result.update(rewards=rewards, first_quarter=first, last_quarter=last,
                          rise=last - first, passed=last > first)
            if not result["passed"]:
                result["error"] = f"the reward did not rise ({first:.4f} -> {last:.4f})"
    except Exception as e:  # the result file is written whatever happened
        result["error"] = repr(e)
    finally:
        server.shutdown()
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "stderr_tail"}))
    if not result["passed"]:
        print(result.get("stderr_tail", ""), file=sys.stderr)
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
