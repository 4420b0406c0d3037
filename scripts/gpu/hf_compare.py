"""Holds sqlrft's CUDA forward and backward passes to transformers on a Qwen2.5-0.5B-shaped model.

First run on an H200 on 2026-12-04 (README, "On a GPU").

Usage: python hf_compare.py --out RESULT.json [--work DIR] [--layers N] -- SQLRFT_CUDA_COMMAND...
(e.g. `-- ./sqlrft cuda`).

Builds a random-weight model from the real Qwen2.5-0.5B config written below (no download),
saves it with save_pretrained (safetensors, bf16 weights so both sides start from the same
values), runs `<command> forward` on random token ids (with each attention kernel), and compares
its logits, next-token log-probs and entropies with transformers' in float32 (the reference)
and in bfloat16 (what bf16 arithmetic costs in the reference framework); then `<command> grads`
against torch's gradients of sum(dlogp * logp) for weights of every kind, and with
`--lora-adapter` against PEFT's gradients of LoRA r16 adapters on every projection. Passes when sqlrft's
error against float32 is within 2x transformers-bf16's own error, or under 2e-2 relative
(5e-2 for gradients).
Needs: torch, transformers, safetensors, peft (all on the GPU machines' image).
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file
from transformers import Qwen2Config, Qwen2ForCausalLM

# Qwen2.5-0.5B-Instruct's config.json (architecture fields).
QWEN25_05B = dict(
    hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2,
    num_hidden_layers=24, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
    vocab_size=151936, max_position_embeddings=32768, hidden_act="silu", bos_token_id=151643,
    eos_token_id=151645, use_sliding_window=False, sliding_window=32768, max_window_layers=21,
)


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def compare_grads(got, ref, names, label, errs):
    """Records sqlrft's gradient errors against fp32 torch beside torch-bf16's own; passes when
    sqlrft's are within 2x bf16's or under 5e-2 relative."""
    passed = True
    for n in names:
        e = {"sqlrft_vs_fp32": rel(got[n], ref["fp32"][n]),
             "torch_bf16_vs_fp32": rel(ref["bf16"][n], ref["fp32"][n])}
        errs[f"{label}.grad.{n}"] = e
        passed &= e["sqlrft_vs_fp32"] <= max(2 * e["torch_bf16_vs_fp32"], 5e-2)
    return passed


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_gradients(a, work, ids, dlogp, tokens, result, errs):
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from safetensors.torch import save_file

    dev = "cuda"
    rank, alpha = 16, 32
    adapter = work / "adapter.safetensors"
    ref, names, saved = {}, None, None
    for name, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16)]:
        base = Qwen2ForCausalLM.from_pretrained(work, torch_dtype=dtype)
        m = get_peft_model(base, LoraConfig(r=rank, lora_alpha=alpha, target_modules=LORA_TARGETS,
                                            lora_dropout=0.0, task_type="CAUSAL_LM"))
        if saved is None:
            # B drawn non-zero (PEFT starts it at 0) so A has a gradient too; stored in bf16 so
            # every side starts from the same values. PEFT's file names drop the adapter name.
            g = torch.Generator().manual_seed(a.seed + 2)
            with torch.no_grad():
                for n, p in m.named_parameters():
                    if "lora_B" in n:
                        p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            saved = {k: v.to(torch.bfloat16).contiguous() for k, v in get_peft_model_state_dict(m).items()}
            save_file(saved, str(adapter))
            last = a.layers - 1
            picks = ("layers.0.self_attn.q_proj.", "layers.0.self_attn.v_proj.", "layers.0.mlp.down_proj.",
                     f"layers.{last}.self_attn.o_proj.", f"layers.{last}.mlp.gate_proj.")
            names = [k for k in sorted(saved) if any(x in k for x in picks)]
        with torch.no_grad():
            for n, p in m.named_parameters():
                key = n.replace(".default", "")
                if key in saved:
                    p.copy_(saved[key].to(dtype))
        m = m.to(dev).train()
        logits = m(input_ids=ids.to(dev)).logits.float()
        logp = torch.log_softmax(logits[:, :-1] / a.temperature, dim=-1).gather(-1, ids[:, 1:, None].to(dev))[..., 0]
        (logp * dlogp.to(dev)).sum().backward()
        params = {n.replace(".default", ""): p for n, p in m.named_parameters()}
        ref[name] = {n: params[n].grad.float().flatten().cpu() for n in names}
        del m, base, params
        torch.cuda.empty_cache()
    path = work / "sqlrft-lora-grads.safetensors"
    proc = subprocess.run(
        [*a.command, "grads", "--model", str(work), "--tokens", str(tokens), "--dlogp", str(work / "dlogp.json"),
         "--tensors", ",".join(names), "--out", str(path), "--temperature", str(a.temperature),
         "--attention", "flash", "--lora-adapter", str(adapter), "--lora-alpha", str(alpha)],
        capture_output=True, text=True,
    )
    print(proc.stdout, proc.stderr, sep="\n")
    if proc.returncode != 0:
        result["lora_error"] = proc.stderr[-4000:]
        return False
    return compare_grads(load_file(str(path)), ref, names, "lora", errs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/sqlrft-gpu-check")
    ap.add_argument("--layers", type=int, default=QWEN25_05B["num_hidden_layers"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("command", nargs="+")
    a = ap.parse_args()

    work = pathlib.Path(a.work) / "qwen25-05b-random"
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(a.seed)
    cfg = Qwen2Config(**{**QWEN25_05B, "num_hidden_layers": a.layers})
    model = Qwen2ForCausalLM(cfg)  # transformers' own initialisation: std 0.02, norms 1
    model = model.to(torch.bfloat16).eval()
    model.save_pretrained(work, safe_serialization=True)

    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.tokens))
    tokens = work / "tokens.json"
    tokens.write_text(json.dumps(ids.tolist()))
    result = {"config": {**QWEN25_05B, "num_hidden_layers": a.layers}, "batch": a.batch, "tokens": a.tokens}
    ours = {}
    for kind in ("materialised", "flash"):
        path = work / f"sqlrft-{kind}.safetensors"
        t0 = time.time()
        proc = subprocess.run(
            [*a.command, "forward", "--model", str(work), "--tokens", str(tokens), "--out", str(path),
             "--temperature", str(a.temperature), "--attention", kind],
            capture_output=True, text=True,
        )
        print(proc.stdout, proc.stderr, sep="\n")
        result[f"sqlrft_{kind}_seconds_incl_load"] = time.time() - t0
        if proc.returncode != 0:
            result.update(passed=False, error=f"{kind}: {proc.stderr[-4000:]}")
            pathlib.Path(a.out).write_text(json.dumps(result, indent=2))
            sys.exit(1)
        ours[kind] = load_file(str(path))

    dev = "cuda"
    refs = {}
    for name, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16)]:
        m = Qwen2ForCausalLM.from_pretrained(work, torch_dtype=dtype).to(dev).eval()
        with torch.no_grad():
            logits = m(input_ids=ids.to(dev)).logits.float().cpu()
        z = logits[:, :-1] / a.temperature
        logp_all = torch.log_softmax(z, dim=-1)
        logps = logp_all.gather(-1, ids[:, 1:, None])[..., 0]
        entropies = -(logp_all.exp() * logp_all).sum(-1)
        refs[name] = dict(logits=logits, logps=logps, entropies=entropies)
        del m
        torch.cuda.empty_cache()

    errs = {}
    passed = True
    for kind, o in ours.items():
        for key in ["logits", "logps", "entropies"]:
            e = {
                "sqlrft_vs_fp32": rel(o[key], refs["fp32"][key]),
                "torch_bf16_vs_fp32": rel(refs["bf16"][key], refs["fp32"][key]),
            }
            errs[f"{kind}.{key}"] = e
            passed &= e["sqlrft_vs_fp32"] <= max(2 * e["torch_bf16_vs_fp32"], 2e-2)
        errs[f"{kind}.top1_agreement_with_fp32"] = float(
            (o["logits"].argmax(-1) == refs["fp32"]["logits"].argmax(-1)).float().mean())
    # Gradients of sum(dlogp * logp) for a few weights of every kind.
    names = ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
             "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
             "model.layers.0.self_attn.k_proj.weight", f"model.layers.{a.layers - 1}.self_attn.o_proj.weight",
             f"model.layers.{a.layers - 1}.mlp.down_proj.weight", "model.norm.weight"]
    g = torch.Generator().manual_seed(a.seed + 1)
    dlogp = torch.randn(a.batch, a.tokens - 1, generator=g)
    (work / "dlogp.json").write_text(json.dumps(dlogp.tolist()))
    ref_grads = {}
    for name, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16)]:
        m = Qwen2ForCausalLM.from_pretrained(work, torch_dtype=dtype).to(dev).train()
        logits = m(input_ids=ids.to(dev)).logits.float()
        logp = torch.log_softmax(logits[:, :-1] / a.temperature, dim=-1).gather(-1, ids[:, 1:, None].to(dev))[..., 0]
        (logp * dlogp.to(dev)).sum().backward()
        params = dict(m.named_parameters())
        ref_grads[name] = {n: params[n].grad.float().flatten().cpu() for n in names}
        del m, params
        torch.cuda.empty_cache()
    for kind in ("materialised", "flash"):
        path = work / f"sqlrft-grads-{kind}.safetensors"
        proc = subprocess.run(
            [*a.command, "grads", "--model", str(work), "--tokens", str(tokens), "--dlogp", str(work / "dlogp.json"),
             "--tensors", ",".join(names), "--out", str(path), "--temperature", str(a.temperature), "--attention", kind],
            capture_output=True, text=True,
        )
        print(proc.stdout, proc.stderr, sep="\n")
        if proc.returncode != 0:
            result.update(passed=False, error=f"grads {kind}: {proc.stderr[-4000:]}")
            pathlib.Path(a.out).write_text(json.dumps(result, indent=2))
            sys.exit(1)
        passed &= compare_grads(load_file(str(path)), ref_grads, names, kind, errs)
    # LoRA r16 on every projection (PEFT), B drawn non-zero so A has a gradient too: the adapters'
    # gradients of the same sum against PEFT's.
    passed &= lora_gradients(a, work, ids, dlogp, tokens, result, errs)
    result.update(relative_errors=errs, passed=passed)
    pathlib.Path(a.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
