"""Reference logits from transformers for sqlrft-trainer's CPU model.

Usage: python hf_reference.py OUT_DIR

Builds random-weight Qwen2 and Llama models from the real Qwen2.5-0.5B-Instruct and
Llama-3.2-1B-Instruct configs (full widths, heads, GQA, RoPE settings; fewer layers and a smaller
vocabulary so a debug-build test stays quick), saves each with `save_pretrained` (safetensors) to
OUT_DIR/<name>/, and writes OUT_DIR/<name>/reference.json with token ids, the logits transformers
computes for them in float32, and the rotary inverse frequencies.
Needs: torch, transformers.
"""

import json
import pathlib
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

QWEN25_05B = dict(
    hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2,
    num_hidden_layers=24, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
    vocab_size=151936, max_position_embeddings=32768, hidden_act="silu", bos_token_id=151643,
    eos_token_id=151645, use_sliding_window=False, sliding_window=32768, max_window_layers=21,
)
LLAMA32_1B = dict(
    hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
    num_hidden_layers=16, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
    vocab_size=128256, max_position_embeddings=131072, hidden_act="silu", attention_bias=False, mlp_bias=False,
    rope_scaling=dict(rope_type="llama3", factor=32.0, high_freq_factor=4.0, low_freq_factor=1.0,
                      original_max_position_embeddings=8192),
    bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
)


def build(name, cls, config_cls, real, layers, vocab, out, seed):
    torch.manual_seed(seed)
    cfg = config_cls(**{**real, "num_hidden_layers": layers, "vocab_size": vocab})
    model = cls(cfg).to(torch.float32).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.05 * torch.randn_like(p))
    d = out / name
    model.save_pretrained(d, safe_serialization=True)
    ids = torch.randint(0, vocab, (1, 7))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    inv_freq = model.model.rotary_emb.inv_freq
    (d / "reference.json").write_text(json.dumps({
        "ids": ids[0].tolist(),
        "logits": logits.tolist(),
        "inv_freq": inv_freq.tolist(),
    }))


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    build("qwen2.5-0.5b-2layers", Qwen2ForCausalLM, Qwen2Config, QWEN25_05B, 2, 1024, out, 0)
    build("llama-3.2-1b-1layer", LlamaForCausalLM, LlamaConfig, LLAMA32_1B, 1, 1024, out, 1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
