#!/usr/bin/env python3
"""Writes what transformers' apply_chat_template renders for ft's built-in chat templates.

    python3 tools/chat_template_parity.py --out DIR

writes DIR/chat_template_cases.json: one case per (template, conversation, add_generation_prompt)
with the conversation, and either the string apply_chat_template(tokenize=False) returns or the
error it raises. tests/test_chat_template.cpp renders the same conversations with
runtime/data/chat_template.cpp and compares the strings exactly.

Token ids too: for chatml, llama3, llama2 and mistral, the matching small tokenizer of
tools/tokenizer_parity.py (qwen2, llama3, llama2, mistral kinds; the template's BOS/EOS and
markup tokens added as special tokens where the kind lacks them) is written to
DIR/tokens/<template>/tokenizer.json, and DIR/chat_token_cases.json holds
apply_chat_template(tokenize=True) of each conversation (those whose contents hold no special
token's name: Hugging Face would parse those, ft keeps them text), and for prompt/completion
pairs tokenizer(prompt + completion).input_ids (no special tokens added) + EOS with the mask of
tokens whose offsets reach into the completion.

Each model family's template below is the Jinja text of the `chat_template` field in that model's
tokenizer_config.json on the Hugging Face hub (the model is named above each one). No hub access
is needed: the tokenizer is a tiny local `tokenizers` object with the family's BOS/EOS strings and
the template set on it. Needs transformers and jinja2 (tools/requirements-test.txt), not torch.
"""

import argparse
import json
import os
import pathlib
import sys

import jinja2

# Qwen/Qwen2-7B-Instruct (and the other Qwen2-*-Instruct models). A conversation that does not
# start with a system message gets the default system prompt "You are a helpful assistant.".
QWEN2_CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# meta-llama/Meta-Llama-3-8B-Instruct (the revision whose generation prompt is conditional).
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

# meta-llama/Llama-2-7b-chat-hf (the same text in Llama-2-13b-chat-hf and Llama-2-70b-chat-hf).
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

# mistralai/Mistral-7B-Instruct-v0.1 (and Mixtral-8x7B-Instruct-v0.1): the current template, with
# the optional system message put in front of the first user message.
MISTRAL = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

# ft's own "plain" template (no model family has it): the contents as they are, each assistant
# message followed by the tokenizer's EOS. For prompt/completion data and base models.
PLAIN = (
    "{% for message in messages %}{{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
)

# name -> (template, bos_token, eos_token) as the family's tokenizer_config.json sets them.
TEMPLATES = {
    "chatml": (QWEN2_CHATML, None, "<|im_end|>"),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    "llama2": (LLAMA2, "<s>", "</s>"),
    "mistral": (MISTRAL, "<s>", "</s>"),
    "plain": (PLAIN, None, "<|endoftext|>"),
}


def msg(role, content):
    return {"role": role, "content": content}


# name -> messages. Every template is given every conversation; where the real template raises,
# the case records the error and ft must refuse the conversation too.
CONVERSATIONS = {
    "system_user_assistant": [
        msg("system", "You are terse."),
        msg("user", "What is 2+2?"),
        msg("assistant", "4"),
    ],
    "multi_turn_with_system": [
        msg("system", "Answer in French."),
        msg("user", "Hello"),
        msg("assistant", "Bonjour"),
        msg("user", "Thank you"),
        msg("assistant", "Merci"),
    ],
    "multi_turn_no_system": [
        msg("user", "first question"),
        msg("assistant", "first answer"),
        msg("user", "second question"),
        msg("assistant", "second answer"),
    ],
    "unicode": [
        msg("system", "Réponds en 日本語 🙂"),
        msg("user", "héllo, 世界! Ünïcödé ✓"),
        msg("assistant", "こんにちは 🌍 — ça va?"),
    ],
    # ASCII and Unicode whitespace at the edges: llama3 trims, llama2 strips, the others keep it.
    "edge_whitespace": [
        msg("system", "  padded system\n"),
        msg("user", "\t user with tabs \n\n"),
        msg("assistant", "\u3000\u00a0wide and no-break spaces\u2028 \u2003"),
        msg("user", "\x0b\x0cvertical\x1c\x85"),
        msg("assistant", " \n inner  spaces  kept \r\n"),
    ],
    "only_whitespace_contents": [
        msg("user", "   "),
        msg("assistant", "\n\t "),
    ],
    "empty_contents": [
        msg("user", ""),
        msg("assistant", ""),
    ],
    "empty_system": [
        msg("system", ""),
        msg("user", "question"),
        msg("assistant", "answer"),
    ],
    "markup_in_content": [
        msg("system", "Use <<SYS>> and [INST] literally."),
        msg("user", "<|im_start|>user [INST] <s> </s> <|eot_id|>"),
        msg("assistant", "[/INST] <</SYS>> <|im_end|>\n<|im_start|>"),
    ],
    "prompt_only": [msg("user", "Only a question")],
    "system_and_prompt": [msg("system", "Be brief."), msg("user", "Only a question")],
    "system_only": [msg("system", "Nothing else")],
    "ends_with_user": [
        msg("user", "q1"),
        msg("assistant", "a1"),
        msg("user", "q2"),
    ],
    "assistant_first": [msg("assistant", "I speak first"), msg("user", "ok")],
    "two_users_in_a_row": [msg("user", "one"), msg("user", "two"), msg("assistant", "a")],
    "system_later_even": [
        msg("user", "q1"),
        msg("assistant", "a1"),
        msg("system", "late system"),
        msg("user", "q2"),
        msg("assistant", "a2"),
    ],
    # llama2's template drops a system message at an odd position without a word (it neither
    # matches 'user' nor 'assistant'); ft refuses it instead of losing the text silently.
    "system_later_odd": [
        msg("user", "q1"),
        msg("system", "late system"),
        msg("user", "q2"),
        msg("assistant", "a2"),
    ],
}

# (template, conversation) pairs the real template renders but ft refuses on purpose.
FT_REFUSES = {("llama2", "system_later_odd")}


def make_tokenizer(template, bos_token, eos_token):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0}
    for token in (bos_token, eos_token):
        if token is not None:
            vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos_token, eos_token=eos_token, unk_token="<unk>")
    tokenizer.chat_template = template
    return tokenizer


def render_cases():
    cases = []
    for template_name, (template, bos_token, eos_token) in TEMPLATES.items():
        tokenizer = make_tokenizer(template, bos_token, eos_token)
        for conversation_name, messages in CONVERSATIONS.items():
            for add_generation_prompt in (False, True):
                case = {
                    "template": template_name,
                    "conversation": conversation_name,
                    "add_generation_prompt": add_generation_prompt,
                    "messages": messages,
                    "ft_refuses": (template_name, conversation_name) in FT_REFUSES,
                }
                try:
                    text = tokenizer.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=add_generation_prompt)
                    if not isinstance(text, str):
                        raise TypeError(f"apply_chat_template returned {type(text).__name__}")
                    case["text"] = text
                except jinja2.exceptions.TemplateError as error:  # the template refuses
                    case["error"] = f"{type(error).__name__}: {error}"
                cases.append(case)
    return cases


# template -> (tools/tokenizer_parity.py kind, special tokens the template writes).
TOKEN_KINDS = {
    "chatml": ("qwen2", ["<|im_start|>", "<|im_end|>"]),
    "llama3": ("llama3", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                          "<|eot_id|>"]),
    "llama2": ("llama2", ["<s>", "</s>"]),
    "mistral": ("mistral", ["<s>", "</s>", "[INST]", "[/INST]"]),
}

PROMPT_COMPLETIONS = [
    ("What is 2+2?", " 4"),
    ("Translate to French: cat", "\nchat"),
    ("Q: héllo 世界\nA:", " こんにちは 🌍"),
    ("trailing space ", "answer"),
    ("no space", "joined"),
    ("  ", "  spaces  "),
    ("x", "\n\n\tindented"),
]


def token_cases(out_dir):
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tokenizer_parity

    kinds = tokenizer_parity.build_kinds()
    cases = []
    for template_name, (kind, specials) in TOKEN_KINDS.items():
        template, bos_token, eos_token = TEMPLATES[template_name]
        backend = Tokenizer.from_str(json.dumps(kinds[kind][0]))
        backend.add_special_tokens([AddedToken(name, special=True, normalized=False)
                                    for name in specials if backend.token_to_id(name) is None])
        folder = out_dir / "tokens" / template_name
        folder.mkdir(parents=True, exist_ok=True)
        backend.save(str(folder / "tokenizer.json"))
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos_token,
                                            eos_token=eos_token)
        tokenizer.chat_template = template
        added = [token.content for token in backend.get_added_tokens_decoder().values()
                 if token.special]
        for conversation_name, messages in CONVERSATIONS.items():
            if any(name in message["content"] for message in messages for name in added):
                continue
            for add_generation_prompt in (False, True):
                try:
                    ids = tokenizer.apply_chat_template(
                        messages, tokenize=True, add_generation_prompt=add_generation_prompt)
                except jinja2.exceptions.TemplateError:
                    continue
                if (template_name, conversation_name) in FT_REFUSES:
                    continue
                if isinstance(ids, dict) or hasattr(ids, "keys"):
                    ids = ids["input_ids"]
                cases.append({"template": template_name, "eos_token": eos_token,
                              "conversation": conversation_name,
                              "add_generation_prompt": add_generation_prompt,
                              "messages": messages, "ids": list(ids)})
        for prompt, completion in PROMPT_COMPLETIONS:
            encoded = tokenizer(prompt + completion, add_special_tokens=False,
                                return_offsets_mapping=True)
            mask = [1 if end > len(prompt) else 0 for _, end in encoded["offset_mapping"]]
            mask = ([0] + mask[1:] + [1]) if mask else [1]
            cases.append({"template": template_name, "eos_token": eos_token,
                          "prompt": prompt, "completion": completion,
                          "ids": encoded["input_ids"] + [tokenizer.eos_token_id],
                          "loss_mask": mask})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for chat_template_cases.json")
    args = parser.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import transformers
    except ImportError as error:
        sys.exit(f"chat_template_parity.py needs transformers ({error}); "
                 "install tools/requirements-test.txt (tools/setup.sh does)")
    cases = render_cases()
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"transformers_version": transformers.__version__, "cases": cases}
    path = out_dir / "chat_template_cases.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases to {path}")
    token_path = out_dir / "chat_token_cases.json"
    token_path.write_text(json.dumps({"cases": token_cases(out_dir)}, ensure_ascii=False,
                                      indent=1) + "\n", encoding="utf-8")
    print(f"wrote token cases to {token_path}")


if __name__ == "__main__":
    main()
