"""Eval Protocol evaluator for Fireworks RFT: each rollout's SQL is scored by the sqlrft reward
service (`sqlrft reward serve`), which runs it on the sandbox and compares typed results.

The request and its failure handling are evaluator.py's `evaluate` (the legacy paste-in
evaluator, kept beside this file): `eval-protocol upload` packages this directory, so both travel
together. Steps from `sqlrft build` to an RFT job: README.md, "Fireworks RFT with Eval Protocol".

Settings, from the environment (`eval-protocol upload --env-file .env` uploads them as the
evaluator's secrets):

  SQLRFT_REWARD_URL    base URL of the reward service; required, there is no default
  SQLRFT_REWARD_TOKEN  its bearer token, when it runs with one
  SQLRFT_DATASET       JSONL written by `sqlrft build` [default: data/train.jsonl]
  SQLRFT_MODEL         the model local runs roll out with [default: Qwen2.5 7B Instruct on Fireworks]
  SQLRFT_ROLLOUT       `model` [default] asks SQLRFT_MODEL for each answer; `dataset` scores the
                       dataset's own (gold) assistant answers with no model call: a check that the
                       service, the token and the ground truth agree before a job (every row
                       should score 1). Leave it unset when uploading or creating the job.
"""
import os
import sys
from typing import Any

from eval_protocol.models import EvaluateResult, EvaluationRow, MetricResult
from eval_protocol.pytest import NoOpRolloutProcessor, SingleTurnRolloutProcessor, evaluation_test

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluator  # noqa: E402  (beside this file, wherever pytest runs from)

DATASET = os.environ.get("SQLRFT_DATASET", "data/train.jsonl")
MODEL = os.environ.get("SQLRFT_MODEL", "fireworks_ai/accounts/fireworks/models/qwen2p5-7b-instruct")
ROLLOUT = os.environ.get("SQLRFT_ROLLOUT", "model")
if ROLLOUT not in ("model", "dataset"):
    raise SystemExit(f"SQLRFT_ROLLOUT={ROLLOUT!r}: use `model` (ask SQLRFT_MODEL) or `dataset`")


def sqlrft_rows(records: list[dict[str, Any]]) -> list[EvaluationRow]:
    """`sqlrft build` records → rows. The prompt is the system and user messages; the gold
    assistant answer is kept only for SQLRFT_ROLLOUT=dataset, so an RFT job never sees it."""
    rows = []
    for record in records:
        messages = [m for m in record["messages"] if ROLLOUT == "dataset" or m["role"] != "assistant"]
        rows.append(EvaluationRow(messages=messages, ground_truth=record.get("ground_truth")))
    return rows


def _wire(message) -> dict[str, Any]:
    return {"role": message.role, "content": message.content}


@evaluation_test(
    input_dataset=[DATASET],
    dataset_adapter=sqlrft_rows,
    completion_params=[{"model": MODEL, "temperature": 0.0, "max_tokens": 1024}],
    rollout_processor=NoOpRolloutProcessor() if ROLLOUT == "dataset" else SingleTurnRolloutProcessor(),
    mode="pointwise",
)
def test_sqlrft_reward(row: EvaluationRow) -> EvaluationRow:
    """Scores the row's last assistant message by execution, through the reward service."""
    answer = evaluator.evaluate([_wire(m) for m in row.messages], row.ground_truth)
    row.evaluation_result = EvaluateResult(
        score=answer["score"],
        is_score_valid=answer["is_score_valid"],
        reason=answer["reason"],
        metrics={
            name: MetricResult(
                score=float(metric.get("score", 0.0)),
                reason=str(metric.get("reason", "")),
                is_score_valid=bool(metric.get("is_score_valid", True)),
            )
            for name, metric in (answer.get("metrics") or {}).items()
        },
    )
    return row
