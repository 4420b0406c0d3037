"""TRL's GRPOTrainer on the CPU: the peer `sqlrft bench train` measures in the same run.

Same model directory, prompts and shapes as sqlrft's side: `--num-generations` completions of each
prompt per step (all prompts in one step), at most `--max-new-tokens` new tokens, sampling at
temperature 1, LoRA on every projection, beta 0, one optimizer step per generation round, no vLLM,
no activation checkpointing, float32, `--threads` torch threads. Prints one JSON line: the mean of the measured steps (after
`--warmup` unmeasured ones) split into generation, rewards and update.

Phases: `_generate_and_score_completions` is timed whole and the reward function inside it
separately; generation = that minus rewards; update = the optimizer step's wall time minus both.

Needs torch (CPU), transformers, trl, peft, datasets.
"""

import argparse
import json
import re
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True, help="JSONL of {prompt: [messages]}")
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=float, default=16.0)
    ap.add_argument("--output-dir", default="trl-bench-output")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    import datasets
    import peft
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    with open(args.prompts) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    n_prompts = len(rows)
    steps = args.warmup + args.steps
    # One step consumes every prompt once; repeat them for every step.
    dataset = datasets.Dataset.from_list(rows * steps)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)

    strict = re.compile(r"^<think>.+?</think>\s*<sql>.+?</sql>$", re.DOTALL)
    timer = {"rewards": 0.0, "gen_and_score": 0.0}

    def format_reward(completions, **_):
        started = time.perf_counter()
        out = []
        for c in completions:
            text = c[-1]["content"] if isinstance(c, list) else c
            out.append(1.0 if strict.match(text.strip()) else 0.0)
        timer["rewards"] += time.perf_counter() - started
        return out

    completions_per_step = n_prompts * args.num_generations
    config_kwargs = dict(
        output_dir=args.output_dir,
        per_device_train_batch_size=completions_per_step,
        gradient_accumulation_steps=1,
        num_generations=args.num_generations,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        beta=0.0,
        num_iterations=1,
        learning_rate=1e-6,
        max_steps=steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_vllm=False,
        use_cpu=True,
        bf16=False,
        fp16=False,
        seed=args.seed,
        dataloader_num_workers=0,
        # TRL 1.16 turns activation checkpointing on by default; sqlrft keeps activations, so
        # the peer does too (a recomputed forward would count against TRL).
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    accepted = GRPOConfig.__dataclass_fields__
    config = GRPOConfig(**{k: v for k, v in config_kwargs.items() if k in accepted})
    lora = peft.LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[format_reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
    )

    inner = trainer._generate_and_score_completions
    completion_tokens = {"n": 0, "prompt": 0}

    def timed(inputs):
        started = time.perf_counter()
        out = inner(inputs)
        timer["gen_and_score"] += time.perf_counter() - started
        completion_tokens["n"] += int(out["completion_mask"].sum().item())
        completion_tokens["prompt"] += int(out["prompt_mask"].sum().item()) // args.num_generations
        return out

    trainer._generate_and_score_completions = timed

    steps_seen = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            for k in timer:
                timer[k] = 0.0
            completion_tokens["n"] = completion_tokens["prompt"] = 0
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            wall = time.perf_counter() - self.started
            steps_seen.append(
                {
                    "step_s": wall,
                    "rewards_s": timer["rewards"],
                    "generation_s": timer["gen_and_score"] - timer["rewards"],
                    "update_s": wall - timer["gen_and_score"],
                    "completion_tokens": completion_tokens["n"],
                    "prompt_tokens": completion_tokens["prompt"],
                }
            )

    trainer.add_callback(StepTimer())
    trainer.train()
    measured = steps_seen[args.warmup :]
    if not measured:
        raise SystemExit(f"only {len(steps_seen)} steps ran; nothing measured")
    result = {k: sum(s[k] for s in measured) / len(measured) for k in measured[0]}
    result.update(
        trl=trl.__version__,
        torch=torch.__version__,
        transformers=transformers.__version__,
        threads=torch.get_num_threads(),
        measured_steps=len(measured),
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
