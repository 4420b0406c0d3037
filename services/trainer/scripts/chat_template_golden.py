"""Golden chat-template renders from transformers (jinja2), for the minijinja renderer.

Writes tests/fixtures/chat_template_golden.json. Run once (CI uses the committed fixture):
    /tmp/venv/bin/python services/trainer/scripts/chat_template_golden.py
The template below is ours, written to exercise what Hugging Face templates use: whitespace
control, trim_blocks/lstrip_blocks, loop variables, attribute and item access, filters,
`tojson`, `raise_exception`, bos/eos tokens. Needs: transformers.
"""

import json
import pathlib

from transformers.utils.chat_template_utils import render_jinja_template

TEMPLATE = """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system = messages[0]['content'] | trim %}
    {%- set rest = messages[1:] %}
{%- else %}
    {%- set system = 'You write SQL for DuckDB.' %}
    {%- set rest = messages %}
{%- endif %}
<|im_start|>system
{{ system }}<|im_end|>
{% for message in rest %}
    {%- if message.role not in ['user', 'assistant'] %}
        {{- raise_exception('unexpected role ' + message.role) }}
    {%- endif %}
    {%- if loop.first and message.role != 'user' %}
        {{- raise_exception('the first turn must be the user') }}
    {%- endif %}
<|im_start|>{{ message.role }}
{{ message['content'] }}{% if message.role == 'assistant' %}{{ eos_token }}{% endif %}<|im_end|>
{% if loop.last and message.meta is defined %}{{ message.meta | tojson }}
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}
<|im_start|>assistant
{% endif %}"""

CASES = [
    ("system_and_user", [{"role": "system", "content": "  Answer with SQL.  "}, {"role": "user", "content": "How many orders?"}], True),
    ("default_system", [{"role": "user", "content": "Top 3 customers?"}], True),
    ("with_answer", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<sql>SELECT 1</sql>"}], False),
]


def main():
    out = {"template": TEMPLATE, "bos_token": "<s>", "eos_token": "</s>", "cases": []}
    for name, messages, gen in CASES:
        rendered, _ = render_jinja_template(
            conversations=[messages], chat_template=TEMPLATE, add_generation_prompt=gen,
            bos_token="<s>", eos_token="</s>",
        )
        out["cases"].append({"name": name, "messages": messages, "add_generation_prompt": gen, "expected": rendered[0]})
    path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat_template_golden.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
