"""GRPO step benchmark: TRL's GRPOTrainer against sqlrft's CUDA backend on one GPU.

First run on an H200 on 2026-12-04 (README, "On a GPU").

Usage: python trl_bench.py --out bench.json [--sizes 0.5b,1.5b] [--modes lora,full] [--steps 3]
       [--deadline EPOCH_SECONDS] -- SQLRFT_CUDA_COMMAND...

Modes: `lora` (rank 16, alpha 32, every projection: PEFT on TRL's side) and `full` fine-tuning.
Results are written after every run, and runs that would start after --deadline minus a margin
are recorded as skipped, so a timed-out call still leaves what it measured.

For each size: a random-weight model from the real Qwen2.5 config below (no download) in bf16, a
word-level tokenizer made here with one token per model id (so every sampled id decodes), 16
prompts of 64 tokens, 8 generations each, exactly 256 completion tokens (random weights almost
never sample EOS, and the count is reported), a dummy reward. Per optimizer step it reports the
time split into generation (TRL's _generate_and_score_completions, timed with CUDA syncs) and
update (the rest of the step), completion tokens/s, peak GPU memory, and model FLOPs
utilisation: 2·P FLOPs per generated or scored token and 6·P per trained token (P = parameters;
attention FLOPs left out, so MFU is a slight underestimate) over --peak-tflops.
sqlrft's side comes from `<command> bench` on the same random model saved to disk (fp32 master
weights and AdamW state; its memory figure is the driver's in-use maximum seen after each phase,
TRL's is torch's max_memory_allocated). The update's FLOPs are 6·P per trained token under full
fine-tuning and 4·P under LoRA (no weight gradients of the frozen base), on both sides.
`speedup` is TRL's step time over sqlrft's for each size and mode (target ≥ 1.5).
Needs: torch, transformers, tokenizers, peft (in the GPU image), trl (1.16; carried as wheels
by scripts/gpu/prepare.sh).
"""

import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import torch

QWEN25 = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2,
                 num_hidden_layers=24, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_attention_heads=12, num_key_value_heads=2,
                 num_hidden_layers=28, tie_word_embeddings=True),
}
COMMON = dict(rms_norm_eps=1e-6, rope_theta=1000000.0, vocab_size=151936, max_position_embeddings=32768,
              hidden_act="silu", bos_token_id=151643, eos_token_id=151645, use_sliding_window=False)
PROMPTS, GENERATIONS, PROMPT_TOKENS, COMPLETION_TOKENS = 16, 8, 64, 256
LORA_RANK = 16
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tokenizer_for(vocab):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=f"t{COMMON['eos_token_id']}",
                                   pad_token=f"t{COMMON['bos_token_id']}", unk_token="t0")


def filtered(cls, **kw):
    """Keyword arguments the installed version of `cls` accepts (TRL renames options)."""
    names = {f.name for f in dataclasses.fields(cls)}
    dropped = sorted(set(kw) - names)
    if dropped:
        print(f"note: {cls.__name__} has no {dropped}; left out")
    return cls(**{k: v for k, v in kw.items() if k in names})


def bench_trl(size, mode, steps, peak_tflops, seed):
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(seed)
    cfg = Qwen2Config(**QWEN25[size], **COMMON)
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    tok = tokenizer_for(cfg.vocab_size)
    g = torch.Generator().manual_seed(seed)
    prompts = [" ".join(f"t{i}" for i in torch.randint(200, 150000, (PROMPT_TOKENS,), generator=g).tolist())
               for _ in range(PROMPTS * (steps + 1))]
    data = Dataset.from_dict({"prompt": prompts})

    def reward(completions, **_):
        # Cheap and deterministic: the share of distinct tokens.
        return [len(set(c.split())) / max(1, len(c.split())) for c in completions]

    out = tempfile.mkdtemp()
    args = filtered(
        GRPOConfig, output_dir=out, per_device_train_batch_size=32, gradient_accumulation_steps=4,
        num_generations=GENERATIONS, max_completion_length=COMPLETION_TOKENS, learning_rate=1e-6,
        bf16=True, beta=0.0, max_steps=steps + 1, logging_steps=1, report_to="none", save_strategy="no",
        temperature=1.0, use_vllm=False, seed=seed, dataloader_num_workers=0,
    )
    peft_config = None
    if mode == "lora":
        from peft import LoraConfig
        peft_config = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules=PROJECTIONS,
                                 lora_dropout=0.0, task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=data,
                          processing_class=tok, peft_config=peft_config)

    gen_times, step_times, completion_tokens = [], [], []
    gen_name = next(n for n in ("_generate_and_score_completions", "_generate") if hasattr(trainer, n))
    inner = getattr(trainer, gen_name)

    def timed(*a, **kw):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = inner(*a, **kw)
        torch.cuda.synchronize()
        gen_times.append(time.perf_counter() - t0)
        if isinstance(r, dict) and "completion_mask" in r:
            completion_tokens.append(int(r["completion_mask"].sum()))
        return r

    setattr(trainer, gen_name, timed)

    class StepClock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, *_, **__):
            torch.cuda.synchronize()
            step_times.append(time.perf_counter() - self.t0)

    trainer.add_callback(StepClock())
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated()

    # Step 0 is warm-up (compilation, allocator growth): report the median of the rest.
    def med(xs):
        xs = sorted(xs[1:] or xs)
        return xs[len(xs) // 2]

    step, gen = med(step_times), med(gen_times)
    upd = step - gen
    n_completions = PROMPTS * GENERATIONS
    gen_tokens = med(completion_tokens) if completion_tokens else n_completions * COMPLETION_TOKENS
    scored = n_completions * (PROMPT_TOKENS + COMPLETION_TOKENS)
    gen_flops = 2 * params * (n_completions * PROMPT_TOKENS + gen_tokens)
    upd_flops = (4 if mode == "lora" else 6) * params * scored
    peak_flops = peak_tflops * 1e12
    return {
        "framework": "trl", "size": size, "mode": mode, "parameters": params, "steps_timed": max(1, len(step_times) - 1),
        "step_seconds": step, "generation_seconds": gen, "update_seconds": upd,
        "completion_tokens_per_step": gen_tokens,
        "generation_tokens_per_second": gen_tokens / gen,
        "update_tokens_per_second": scored / upd if upd > 0 else None,
        "peak_memory_gib": peak / 2**30,
        "mfu_generation": gen_flops / gen / peak_flops, "mfu_update": upd_flops / upd / peak_flops if upd > 0 else None,
        "mfu_step": (gen_flops + upd_flops) / step / peak_flops,
        "config": {"prompts": PROMPTS, "generations": GENERATIONS, "prompt_tokens": PROMPT_TOKENS,
                   "completion_tokens": COMPLETION_TOKENS, "grpo_config": {k: str(v) for k, v in dataclasses.asdict(args).items()
                                                                           if k in ("per_device_train_batch_size", "gradient_accumulation_steps", "num_generations", "max_completion_length", "beta", "bf16")}},
    }


def bench_sqlrft(size, mode, command, steps, peak_tflops, seed, attention):
    """sqlrft's GRPO step on the same shapes through `<command> bench`: generation, then the
    update (forward + backward in micro-batches of 32 rows, clip, AdamW)."""
    if not command:
        return {"framework": "sqlrft", "size": size, "mode": mode, "status": "skipped",
                "reason": "no sqlrft command given"}
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    model_dir = pathlib.Path(tempfile.mkdtemp()) / f"qwen25-{size}-random"
    Qwen2ForCausalLM(Qwen2Config(**QWEN25[size], **COMMON)).to(torch.bfloat16).save_pretrained(model_dir)
    out = model_dir / "bench.json"
    proc = subprocess.run(
        [*command, "bench", "--model", str(model_dir), "--prompts", str(PROMPTS), "--generations", str(GENERATIONS),
         "--prompt-tokens", str(PROMPT_TOKENS), "--max-new", str(COMPLETION_TOKENS), "--micro-batch", "32",
         "--steps", str(steps), "--peak-tflops", str(peak_tflops), "--seed", str(seed), "--attention", attention,
         "--out", str(out), *(["--lora-rank", str(LORA_RANK)] if mode == "lora" else [])],
        capture_output=True, text=True,
    )
    print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
    if proc.returncode != 0:
        raise RuntimeError(f"sqlrft bench failed ({proc.returncode}): {proc.stderr[-2000:]}")
    r = json.loads(out.read_text())
    r["size"] = size
    r["peak_memory_gib"] = r.get("device_memory_in_use_gib_max_seen")
    return r


def speedups(runs):
    """TRL's step time over sqlrft's, per size and mode, where both ran."""
    by = {(r.get("framework"), r.get("size"), r.get("mode")): r for r in runs if "step_seconds" in r}
    return {f"{size}-{mode}": by[("trl", size, mode)]["step_seconds"] / r["step_seconds"]
            for (fw, size, mode), r in by.items() if fw == "sqlrft" and ("trl", size, mode) in by}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="0.5b,1.5b")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="dense bf16 peak of the GPU (H100 SXM: 989; H200: 989)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--deadline", type=float, default=None,
                    help="epoch seconds after which no run starts (a margin of 45 s is kept)")
    ap.add_argument("--attention", default="flash", choices=["materialised", "flash"],
                    help="sqlrft's attention kernels")
    ap.add_argument("command", nargs="*")
    a = ap.parse_args()
    results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    try:
        import trl
        results["trl"] = trl.__version__
    except ImportError as e:
        results["trl"] = f"missing: {e}"
    ok = True
    out = pathlib.Path(a.out)
    for size in a.sizes.split(","):
        for mode in a.modes.split(","):
            for name, fn in (("trl", lambda: bench_trl(size, mode, a.steps, a.peak_tflops, a.seed)),
                             ("sqlrft", lambda: bench_sqlrft(size, mode, a.command, a.steps, a.peak_tflops,
                                                             a.seed, a.attention))):
                if a.deadline is not None and time.time() > a.deadline - 45:
                    r = {"framework": name, "size": size, "mode": mode, "status": "skipped",
                         "reason": "out of time"}
                else:
                    try:
                        r = fn()
                    except Exception as e:  # one failed run should not hide the others
                        r = {"framework": name, "size": size, "mode": mode, "status": "failed", "error": repr(e)}
                        ok = False
                print(json.dumps(r, indent=2))
                results["runs"].append(r)
                torch.cuda.empty_cache()
                results["speedup"] = speedups(results["runs"])
                out.write_text(json.dumps(results, indent=2))
    print(f"{'framework':<8} {'size':<5} {'mode':<5} {'step s':>8} {'gen s':>8} {'upd s':>8} {'gen tok/s':>10} {'peak GiB':>9} {'MFU':>6}")
    for r in results["runs"]:
        if "step_seconds" in r:
            print(f"{r['framework']:<8} {r['size']:<5} {r['mode']:<5} {r['step_seconds']:8.2f} {r['generation_seconds']:8.2f} "
                  f"{r['update_seconds']:8.2f} {r['generation_tokens_per_second']:10.0f} {r['peak_memory_gib']:9.1f} "
                  f"{r['mfu_step']:6.1%}")
        else:
            print(f"{r.get('framework', '?'):<8} {r['size']:<5} {r.get('mode', '?'):<5} {r.get('status')}: {r.get('reason', r.get('error', ''))[:80]}")
    print("speedup (TRL step time / sqlrft's):", json.dumps(results["speedup"]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
