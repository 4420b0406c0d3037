"""Loads a model directory with transformers and prints its float32 logits for token ids, as JSON.

Usage: python hf_logits.py MODEL_DIR '[1, 2, 3]' [ADAPTER_DIR]
With ADAPTER_DIR, loads that PEFT LoRA adapter on top (needs peft).
Checks that directories written by `sqlrft train export` are ones transformers / PEFT load.
Needs: torch, transformers (and peft for adapters).
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
if len(sys.argv) > 3:
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, sys.argv[3]).eval()
ids = torch.tensor([json.loads(sys.argv[2])])
with torch.no_grad():
    logits = model(input_ids=ids).logits[0]
print(json.dumps(logits.tolist()))
