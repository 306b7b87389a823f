"""Chat templates of our own that reproduce what matters of real model families' templates, on the
SmolLM2 tokenizer's tokens (<|im_start|>, <|im_end|>), so tests can run them without the real models.

- QWEN3_HYBRID mimics Qwen3's hybrid template (Qwen3-8B/14B/32B): assistant turns after the last
  user message get an empty `<think>\n\n</think>\n\n` before their content, earlier ones do not;
  the generation prompt gets the same empty block when `enable_thinking` is false. With thinking on,
  the real model writes `<think>` as its first token; a random test model never would, so the mimic
  opens the block in the generation prompt (as Qwen3's Thinking-2507 templates do), which puts the
  model's output inside a thinking block, the behaviour that matters.
- GEMMA mimics Gemma 3/4: no system role (the system text is folded into the first user turn,
  followed by a blank line), roles must alternate user/model or the template raises, the assistant
  is called "model", and contents are trimmed.
"""

import shutil

QWEN3_HYBRID = (
    "{%- set ns = namespace(last=-1) -%}"
    "{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last = loop.index0 -%}{%- endif -%}{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if loop.index0 > ns.last -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{{- m.content + '<|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- else -%}{{- '<think>\\n' -}}{%- endif -%}{%- endif -%}"
)

GEMMA = (
    "{%- if messages[0].role == 'system' -%}"
    "{%- set prefix = messages[0].content + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for m in loop_messages -%}"
    "{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}"
    "{%- endif -%}"
    "{%- set role = 'model' if m.role == 'assistant' else m.role -%}"
    "{{- '<|im_start|>' + role + '\\n' + (prefix if loop.first else '') + (m.content | trim) + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>model\\n' -}}{%- endif -%}"
)


def with_template(model_dir, out_dir, template):
    """A copy of a model folder whose tokenizer carries `template` as its chat template."""
    from transformers import AutoTokenizer

    shutil.copytree(model_dir, out_dir)
    (out_dir / "chat_template.jinja").unlink(missing_ok=True)
    tok = AutoTokenizer.from_pretrained(out_dir)
    tok.chat_template = template
    tok.save_pretrained(out_dir)
    return out_dir
