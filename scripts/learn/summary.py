"""The table the README quotes, from one run of scripts/learn/run.sh.

    python scripts/learn/summary.py WORK_DIR > WORK_DIR/summary.md

Reads WORK_DIR/eval/results.json (`sqlrft eval`'s report), WORK_DIR/timings.tsv (the run's
steps) and the GRPO run's metrics.jsonl; prints Markdown.
"""

import json
import sys
from pathlib import Path

STAGES = {"base": "SmolLM2-135M-Instruct (base)", "sft": "after SFT", "grpo": "after SFT + GRPO"}
TRAINED_BY = {"base": [], "sft": ["distill", "sft"], "grpo": ["distill", "sft", "grpo"]}


def pct(x):
    return "–" if x is None else f"{100 * x:.1f}%"


def minutes(seconds):
    return f"{seconds / 60:.1f} min"


def main():
    work = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    results = json.loads((work / "eval" / "results.json").read_text())
    timings = {}
    for line in (work / "timings.tsv").read_text().splitlines():
        step, _, seconds = line.split("\t")
        timings[step] = int(seconds)
    models = {m["name"]: m for m in results["models"]}
    base = models.get("base", {}).get("accuracy")

    print(f"Test items: {results['dataset']['evaluated']} of {results['dataset']['items_in_file']}, "
          f"greedy, scored by {results['scorer']}.\n")
    print("| model | execution accuracy (95% CI) | vs base | format-valid | SQL errors | training time |")
    print("|---|---|---|---|---|---|")
    for name, label in STAGES.items():
        model = models.get(name)
        if model is None or model.get("accuracy") is None:
            print(f"| {label} | not evaluated | | | | |")
            continue
        acc = model["accuracy"]
        lift = "–" if name == "base" or base is None else f"{100 * (acc['accuracy'] - base['accuracy']):+.1f} pp"
        trained = sum(timings.get(step, 0) for step in TRAINED_BY[name])
        print(
            f"| {label} | {acc['correct']}/{acc['total']} = {pct(acc['accuracy'])} "
            f"({pct(acc['ci_low'])}–{pct(acc['ci_high'])}) | {lift} | {pct(model.get('format_valid_rate'))} "
            f"| {pct(model.get('sql_error_rate'))} | {minutes(trained) if trained else '–'} |"
        )
    print()
    for pair in results.get("pairs", []):
        print(
            f"- {pair['a']} vs {pair['b']}: {pair['a_only']} items only {pair['a']} got right, "
            f"{pair['b_only']} only {pair['b']}; McNemar exact p = {pair['p_value']:.4g}"
        )
    metrics = work / "runs" / "grpo" / "metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if rows:
            rewards = [r.get("reward") for r in rows if r.get("reward") is not None]
            if rewards:
                k = max(1, len(rewards) // 5)
                print(
                    f"- GRPO mean reward: first {k} steps {sum(rewards[:k]) / k:.3f}, "
                    f"last {k} steps {sum(rewards[-k:]) / k:.3f} ({len(rewards)} steps)"
                )
    print()
    print("| step | wall time |")
    print("|---|---|")
    for line in (work / "timings.tsv").read_text().splitlines():
        _, name, seconds = line.split("\t")
        print(f"| {name} | {minutes(int(seconds))} |")
    print(f"| total | {minutes(sum(timings.values()))} |")


if __name__ == "__main__":
    main()
