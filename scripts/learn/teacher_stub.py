"""An OpenAI-compatible teacher for `sqlrft distill` that answers with the gold SQL.

The "it learns" run (scripts/learn/run.sh) needs chain-of-thought rows without a paid teacher.
`sqlrft distill` shows the teacher the question and the correct query (its "## Objective"), so a
teacher that restates the question and returns that query gives the seed's row shape, with a
short reasoning, at no cost. Standard library only.

    python scripts/learn/teacher_stub.py --url-file teacher.url &
"""

import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECTION = re.compile(r"^## (\w+)\n(.*?)(?=^## |\Z)", re.DOTALL | re.MULTILINE)


def sections(text):
    return {name: body.strip() for name, body in SECTION.findall(text)}


def tables_named(sql):
    return sorted(set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)", sql, re.IGNORECASE)))


def answer(messages):
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    parts = sections(user)
    question = parts.get("Instruction", user).strip()
    sql = parts.get("Objective", "").strip()
    tables = ", ".join(tables_named(sql)) or "the tables in the context"
    think = f"The question asks: {question}\nThe data needed is in {tables}; I select, filter and aggregate it as asked."
    return f"<think>\n{think}\n</think>\n<sql>\n{sql}\n</sql>"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_error(404, "only /v1/chat/completions is served")
            return
        length = int(self.headers.get("content-length", 0))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as err:
            self.send_error(400, f"the body is not JSON: {err}")
            return
        text = answer(body.get("messages", []))
        reply = json.dumps(
            {
                "id": "chatcmpl-teacher-stub",
                "object": "chat.completion",
                "model": body.get("model", "teacher-stub"),
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                    for i in range(int(body.get("n", 1) or 1))
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--url-file", required=True, help="where to write the base URL (…/v1)")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    with open(args.url_file, "w") as out:
        out.write(f"http://127.0.0.1:{server.server_address[1]}/v1")
    server.serve_forever()


if __name__ == "__main__":
    main()
