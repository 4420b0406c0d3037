"""Fireworks RFT evaluator that asks the sqlrft reward service for the score.

Paste this file into the Fireworks evaluator editor (the legacy path; Eval Protocol users upload
test_sqlrft_reward.py beside it, which calls `evaluate` below). Set the service URL, and the
bearer token if the service runs with --token, in the one place below: from the environment
(SQLRFT_REWARD_URL, SQLRFT_REWARD_TOKEN) or typed in. There is no default URL: a Fireworks worker
cannot reach your 127.0.0.1, so an unset URL fails every call with a message saying what to set.
`evaluate` returns the service's answer {score, reason, is_score_valid, metrics}; a timeout or any
failure to reach the service becomes `is_score_valid: False` with the reason, never a silent 0.

The request carries the whole Fireworks call, so dataset fields passed as keyword arguments
(`gold_sql`, `ordered`, `columns`, `types`, `partial`, `format_gate`, `tolerance`, `mode`) reach
the service too.
"""
import os

import requests

# --- Settings: the one place to edit -----------------------------------------------------------
REWARD_SERVICE_URL = os.environ.get("SQLRFT_REWARD_URL", "")  # e.g. "https://sqlrft-reward-xyz.a.run.app"
REWARD_SERVICE_TOKEN = os.environ.get("SQLRFT_REWARD_TOKEN", "")  # empty: no Authorization header
TIMEOUT_SECONDS = 60
# -------------------------------------------------------------------------------------------------


class MissingServiceUrl(RuntimeError):
    """The evaluator was not told where the reward service is."""


def service_url() -> str:
    """The reward service's base URL, or MissingServiceUrl saying how to set it."""
    url = (REWARD_SERVICE_URL or "").strip().rstrip("/")
    if not url:
        raise MissingServiceUrl(
            "SQLRFT_REWARD_URL is not set: set it to the base URL of `sqlrft reward serve` "
            "(e.g. https://sqlrft-reward-xyz.a.run.app, no /v1/evaluate), or type the URL into "
            "REWARD_SERVICE_URL at the top of evaluator.py"
        )
    if not url.startswith(("http://", "https://")):
        raise MissingServiceUrl(
            f"SQLRFT_REWARD_URL={url!r} is not an http(s) URL; give the reward service's base "
            "URL, e.g. https://sqlrft-reward-xyz.a.run.app"
        )
    return url


def evaluate(messages: list[dict], ground_truth=None, **kwargs) -> dict:
    """Scores the last assistant message of `messages` against `ground_truth` by execution.

    Raises MissingServiceUrl when no service URL is set (a configuration error, not a score)."""
    url = service_url() + "/v1/evaluate"
    body = {"messages": messages, "ground_truth": ground_truth}
    body.update({key: value for key, value in kwargs.items() if key not in body})
    headers = {"Content-Type": "application/json"}
    if REWARD_SERVICE_TOKEN:
        headers["Authorization"] = f"Bearer {REWARD_SERVICE_TOKEN}"
    try:
        response = requests.post(url, json=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.exceptions.Timeout:
        return _invalid(f"the reward service at {url} did not answer within {TIMEOUT_SECONDS} s")
    except requests.exceptions.RequestException as error:
        return _invalid(f"could not reach the reward service at {url}: {error}")
    if response.status_code != 200:
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        return _invalid(f"the reward service answered HTTP {response.status_code}: {detail}")
    try:
        result = response.json()
        return {
            "score": float(result["score"]),
            "reason": str(result.get("reason", "")),
            "is_score_valid": bool(result.get("is_score_valid", True)),
            "metrics": result.get("metrics", {}),
        }
    except (ValueError, KeyError, TypeError) as error:
        return _invalid(f"unreadable answer from the reward service: {error}")


def _invalid(reason: str) -> dict:
    return {"score": 0.0, "reason": reason, "is_score_valid": False, "metrics": {}}


if __name__ == "__main__":
    # Smoke test from a shell: python3 evaluator.py '<messages JSON>' '<ground_truth JSON>'
    import json
    import sys

    try:
        print(json.dumps(evaluate(json.loads(sys.argv[1]), json.loads(sys.argv[2])), indent=2))
    except MissingServiceUrl as error:
        sys.exit(f"evaluator.py: {error}")
