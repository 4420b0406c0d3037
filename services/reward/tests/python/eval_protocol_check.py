#!/usr/bin/env python3
"""Check deploy/fireworks/test_sqlrft_reward.py (the Eval Protocol evaluator) against a running
sqlrft reward service, the way Fireworks and a user's local run call it.

usage: eval_protocol_check.py DEPLOY_DIR REWARD_URL DATASET.jsonl
  DATASET.jsonl: `sqlrft build` records whose assistant message is the gold answer.
  Needs `eval-protocol` and `pytest` importable. SQLRFT_REWARD_TOKEN, if the service wants one,
  comes from the environment.
Prints `N passed, M failed` and exits non-zero on any failure.
"""
import asyncio
import importlib
import json
import os
import subprocess
import sys


def main(deploy_dir: str, url: str, dataset: str) -> int:
    failures = []
    checks = 0

    def check(ok: bool, what: str) -> None:
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(what)

    records = [json.loads(line) for line in open(dataset) if line.strip()]
    check(len(records) >= 2, f"the dataset has {len(records)} records; want at least 2")

    os.environ.update(SQLRFT_REWARD_URL=url, SQLRFT_DATASET=dataset, SQLRFT_ROLLOUT="dataset")
    sys.path.insert(0, deploy_dir)
    ep_test = importlib.import_module("test_sqlrft_reward")

    # Fireworks calls the decorated function with one row at a time.
    rows = ep_test.sqlrft_rows(records)
    check(all(r.messages[-1].role == "assistant" for r in rows), "dataset rollout dropped the answers")
    for row in rows:
        scored = asyncio.run(ep_test.test_sqlrft_reward(row)).evaluation_result
        check(scored.is_score_valid and scored.score == 1.0,
              f"the gold answer scored {scored.score} (valid={scored.is_score_valid}): {scored.reason}")
        check("result_match" in scored.metrics, f"no result_match metric: {sorted(scored.metrics)}")
    wrong = ep_test.sqlrft_rows(records[:1])[0]
    wrong.messages[-1].content = "<sql>SELECT 42 AS wrong_answer</sql>"
    scored = asyncio.run(ep_test.test_sqlrft_reward(wrong)).evaluation_result
    check(scored.is_score_valid and scored.score < 1.0,
          f"a wrong answer scored {scored.score} (valid={scored.is_score_valid}): {scored.reason}")

    # What an RFT job is given: the prompt without the gold answer.
    ep_test.ROLLOUT = "model"
    prompts = ep_test.sqlrft_rows(records)
    check(all(m.role != "assistant" for r in prompts for m in r.messages), "an RFT prompt holds the answer")
    check(all(r.ground_truth == rec["ground_truth"] for r, rec in zip(prompts, records)),
          "ground truth changed on its way into the rows")

    # An unset URL is a clear configuration error, never a score.
    evaluator = importlib.import_module("evaluator")
    saved, evaluator.REWARD_SERVICE_URL = evaluator.REWARD_SERVICE_URL, ""
    try:
        asyncio.run(ep_test.test_sqlrft_reward(ep_test.sqlrft_rows(records[:1])[0]))
        check(False, "an unset SQLRFT_REWARD_URL did not fail")
    except evaluator.MissingServiceUrl as error:
        check("SQLRFT_REWARD_URL" in str(error), f"unclear error: {error}")
    finally:
        evaluator.REWARD_SERVICE_URL = saved

    # The whole pytest path a user runs before uploading: load the dataset, adapt, roll out
    # (the dataset's answers), evaluate every row.
    env = dict(os.environ, SQLRFT_ROLLOUT="dataset")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sqlrft_reward.py"],
        cwd=deploy_dir, env=env, capture_output=True, text=True, timeout=600,
    )
    check(run.returncode == 0, f"pytest exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    check(" passed" in run.stdout, f"pytest passed nothing:\n{run.stdout[-2000:]}")

    for failure in failures:
        print("FAIL", failure)
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
