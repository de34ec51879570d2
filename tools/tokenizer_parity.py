#!/usr/bin/env python3
"""Writes small tokenizer.json files and what the `tokenizers` library makes of them.

    python3 tools/tokenizer_parity.py --out DIR

For each kind below (GPT-2, Llama 3, Qwen2, Llama 2 and Mistral styles, plus variants), trains a
small BPE on a built-in multilingual corpus, writes DIR/<kind>/tokenizer.json and
DIR/<kind>/expected.json: ids of test texts with and without special-token parsing, and decode
results. tests/test_hf_tokenizer.cpp compares ft's HfTokenizer with these, id for id.
Needs the packages in tools/requirements-test.txt.
"""

import argparse
import json
import os
import random
import sys

try:
    import tokenizers
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors, trainers)
except ImportError as error:
    sys.exit(f"tokenizer_parity.py: {error}; install tools/requirements-test.txt "
             "(python3 -m pip install -r tools/requirements-test.txt)")

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog didn't care; it's been there before.",
    "We'll train a tokenizer, then they're going to compare every token id they've got.",
    "Fine-tuning large language models needs data: chat transcripts, code and plain prose.",
    "In 2024, the model scored 87.5% on the benchmark (up from 81.2%); cost: $1,234.56.",
    "Phone: +1 (555) 123-4567, date 2024-03-15T12:34:56Z, version v1.2.3-rc4.",
    "Café, naïve, résumé, façade, jalapeño, Zürich, smörgåsbord, São Paulo, Kraków.",
    "Ça va? Où est la bibliothèque? Él está aquí. Über alles, schöne Grüße!",
    "你好，世界！这是一个用于测试分词器的中文句子。我们正在训练一个小模型。",
    "机器学习和自然语言处理是人工智能的重要领域。今天天气很好。",
    "日本語のテキストも少し含めます。東京は大きな都市です。",
    "안녕하세요, 세계! 한국어 문장도 있습니다.",
    "Привет, мир! Это тестовое предложение на русском языке.",
    "Γειά σου κόσμε! Αυτή είναι μια δοκιμή.",
    "مرحبا بالعالم! هذه جملة اختبار باللغة العربية.",
    "नमस्ते दुनिया! यह एक परीक्षण वाक्य है।",
    "Emoji time: 😀 😂 👍🏽 🎉🎉🎉 ❤️ 👨‍👩‍👧‍👦 🇫🇷 and more 🚀.",
    "def square(x):\n    return x ** 2  # the square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += values[i];\n}\n",
    "if (a && b || !c) { printf(\"%d\\n\", x->y); } else { return -1; }",
    "import numpy as np\nimport torch.nn.functional as F\n\nclass Model(nn.Module):\n    pass\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name ORDER BY 2 DESC;",
    "<html><body><div class=\"main\">Hello &amp; welcome</div></body></html>",
    "Numbers: 0 1 12 123 1234 12345 123456 3.14159 2.71828 1e-9 0xFF 0b1010.",
    "Whitespace   runs\t\tand\ttabs,\r\nWindows line ends\r\n\r\nand    trailing   ",
    "    indented line\n        more indented\n\n\n\nafter blank lines",
    "I'M SHOUTING, YOU'RE WHISPERING, WE'VE DONE IT, THEY'LL SEE, HE'D KNOW.",
    "Mixed: hello世界123abc😀!? ¿Qué? ¡Sí! naïve—dash… “quotes” ‘single’ «guillemets».",
]

EXTRA_TEXTS = [
    "", " ", "  ", "\n", "\t", "\r\n", "a", "Hello world", " Hello", "Hello  world   ",
    "   leading spaces", "trailing spaces   ", "\n\n\tx  y\n", "a    b\t\t\tc\r\n\r\nd",
    "I'm they're WE'LL Don'T it's", "1234567890 3.14159 1,000,000 ٣٤٥ ²³ Ⅻ",
    "👋🏽 👨‍👩‍👧‍👦 🎉🎉 🤖", "cafe\u0301 vs café, ﬁ ligature, Å vs A\u030a",
    "a" * 300, "x" * 70 + "yz", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6==",
    " " * 200 + "end", "ǅ ẞ ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u180e \u00a0 \u0085 \u2028 \u3000 \u200b",
    "rare: ԱԲԳ ᚠᚢᚦ ⴰⴱⴳ ꦲꦏ 🜁 \U0001F9EC \U000E0041",
    "the thesis: the end, theory of the ends END the",
    "²the the\u0301 _the the_ 3the Ⓐthe ‿the the‍ x",
    "\u3000<|im_sep|>\u00a0x  <tool_call>  y\t<|tool|>\u2028z END\u00a0END",
    "\r \x0b \x0c \x1c end\n" + "\n" * 40 + " \n \n",
    "\n".join(CORPUS),
]

# Characters that random texts are drawn from: the classes the regexes tell apart, marks,
# unusual spaces, and pieces of special-token names.
RANDOM_POOL = (list("abcXYZ019 _-.,'!?\t\n\r") + ["  ", "'s", "'LL", "é", "e\u0301", "ß", "你",
               "好", "の", "한", "я", "ع", "ह", "\u0301", "😀", "👍🏽", "‍", "\u00a0", "\u3000",
               "\u180e", "\u2028", "²", "Ⅻ", "٣", "<|", "|>", "<", ">", "end", "im_", "▁", "\x00"])


def random_texts(count, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randrange(0, 40)))
            for _ in range(count)]


def special_texts(names):
    """Texts around the kind's special-token names: adjacent, spaced, repeated, broken."""
    texts = []
    for name in names:
        texts += [name, f"a{name}b", f" {name} ", f"{name}{name}", f"x {name}\n\ny",
                  f"{name[:-1]}", f"<{name}>", f"Hello{name} world", f"{name}  Hello  "]
    if len(names) >= 2:
        texts.append(f"{names[0]}system\nYou are helpful.{names[1]}\n{names[0]}user\nHi!"
                     f"{names[1]}\n{names[0]}assistant\n")
    return texts


def corpus_lines():
    return [line for line in CORPUS for _ in range(3)]


def train_bpe(pre_tokenizer, normalizer, vocab_size, special_tokens, lines,
              **trainer_options):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  show_progress=False, **trainer_options)
    tok.train_from_iterator(lines, trainer)
    return tok


def byte_level_kind(pattern, normalizer, use_regex, add_prefix_space, specials, lines=None,
                    vocab_size=900):
    """A byte-level BPE: ByteLevel alone (pattern None) or Split(pattern) + ByteLevel."""
    pre = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=use_regex)
    if pattern is not None:
        pre = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False), pre])
    tok = train_bpe(pre, normalizer, vocab_size, specials, lines or corpus_lines(),
                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def metaspace_vocab_json(tok, specials, byte_fallback):
    """Llama-2 layout: specials, then <0x00>..<0xFF> when byte_fallback, then the trained tokens."""
    data = json.loads(tok.to_str())
    trained = sorted(data["model"]["vocab"].items(), key=lambda item: item[1])
    vocab = {name: i for i, name in enumerate(specials)}
    if byte_fallback:
        for b in range(256):
            vocab[f"<0x{b:02X}>"] = len(vocab)
    for name, _ in trained:
        if name not in vocab:
            vocab[name] = len(vocab)
    data["model"]["vocab"] = vocab
    data["added_tokens"] = [
        {"id": vocab[name], "content": name, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True} for name in specials]
    return data


def metaspace_base(byte_fallback, fuse_unk, lines=None, vocab_size=700, limit_alphabet=150):
    """A Llama-2 layout BPE model (trained on "▁"-split words); the caller sets the pipeline."""
    specials = ["<unk>", "<s>", "</s>"]
    # limit_alphabet keeps rare characters out of the vocabulary: they take the byte fallback
    # (or <unk>) path.
    tok = train_bpe(pre_tokenizers.Metaspace(prepend_scheme="always", split=True), None,
                    vocab_size, specials, lines or corpus_lines(), limit_alphabet=limit_alphabet)
    data = metaspace_vocab_json(tok, specials, byte_fallback)
    data["model"].update({"unk_token": "<unk>", "byte_fallback": byte_fallback,
                          "fuse_unk": fuse_unk})
    return data


def llama2_decoder():
    return decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                              decoders.Fuse(), decoders.Strip(" ", 1, 0)])


def component_json(component):
    """The JSON that `tokenizers` writes for one normalizer / pre-tokenizer / decoder."""
    holder = Tokenizer(models.BPE())
    if isinstance(component, normalizers.Normalizer):
        holder.normalizer = component
        return json.loads(holder.to_str())["normalizer"]
    if isinstance(component, pre_tokenizers.PreTokenizer):
        holder.pre_tokenizer = component
        return json.loads(holder.to_str())["pre_tokenizer"]
    holder.decoder = component
    return json.loads(holder.to_str())["decoder"]


def build_kinds():
    """Returns {kind: (tokenizer.json text, special-token names to probe)}."""
    kinds = {}

    # GPT-2: ByteLevel with its own regex; merges written in the legacy "a b" string form.
    tok = byte_level_kind(None, None, True, False, ["<|endoftext|>"])
    tok.add_special_tokens([AddedToken("<|fim_prefix|>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False, lstrip=True,
                               rstrip=True)])
    data = json.loads(tok.to_str())
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    kinds["gpt2"] = (data, ["<|endoftext|>", "<|fim_prefix|>", "<tool_call>"])

    # RoBERTa-like: the same with add_prefix_space (a space before every piece of text).
    roberta = json.loads(json.dumps(data))
    roberta["pre_tokenizer"]["add_prefix_space"] = True
    roberta["decoder"]["add_prefix_space"] = True
    kinds["bytelevel_prefix_space"] = (roberta, ["<|endoftext|>", "<tool_call>"])

    # Llama 3: Split(regex) + ByteLevel(use_regex=False), ignore_merges, and whole words in the
    # vocabulary that the merges would not build (so ignore_merges changes the result).
    llama3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                       "<|end_header_id|>", "<|eot_id|>"] + [
                           f"<|reserved_special_token_{i}|>" for i in range(4)]
    tok = byte_level_kind(LLAMA3_PATTERN, None, False, False, llama3_specials)
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = True
    vocab = data["model"]["vocab"]
    for word in ["Ġtokenizer", "Ġcompare", "Hello", "Ġlanguage", "ĠSELECT"]:
        if word not in vocab:
            vocab[word] = max(max(vocab.values()), max(t["id"] for t in data["added_tokens"])) + 1
    kinds["llama3"] = (data, ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                              "<|eot_id|>"])

    # Qwen2: NFC normalizer, Split(regex) + ByteLevel; added tokens with every option.
    qwen_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = byte_level_kind(QWEN2_PATTERN, normalizers.NFC(), False, False, qwen_specials)
    tok.add_special_tokens([AddedToken("<|im_sep|>", special=True, normalized=False, lstrip=True,
                                       rstrip=True)])
    tok.add_tokens([
        AddedToken("<think>", special=False, normalized=False),
        AddedToken("the", special=False, normalized=True, single_word=True),
        AddedToken("END", special=False, normalized=False, single_word=True, lstrip=True),
        AddedToken("cafe\u0301", special=False, normalized=True),
    ])
    kinds["qwen2"] = (json.loads(tok.to_str()),
                      ["<|im_start|>", "<|im_end|>", "<|im_sep|>", "<think>", "the", "END"])

    # Llama 2: Prepend + Replace normalizer, no pre-tokenizer, byte fallback, <s> template.
    data = metaspace_base(byte_fallback=True, fuse_unk=True)
    data["normalizer"] = component_json(normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]))
    data["pre_tokenizer"] = None
    data["decoder"] = component_json(llama2_decoder())
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken("<|tool|>", special=True, normalized=False, lstrip=True)])
    tok.add_tokens([AddedToken("[[x]]", special=False, normalized=True)])
    kinds["llama2"] = (json.loads(tok.to_str()), ["<s>", "</s>", "<|tool|>", "[[x]]"])

    # Mistral (newer files): Metaspace pre-tokenizer with prepend_scheme "first", byte fallback.
    data = metaspace_base(byte_fallback=True, fuse_unk=True)
    data["pre_tokenizer"] = component_json(
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False))
    data["decoder"] = component_json(llama2_decoder())
    tok = Tokenizer.from_str(json.dumps(data))
    tok.add_special_tokens([AddedToken("[INST]", special=True, normalized=False),
                            AddedToken("[/INST]", special=True, normalized=False)])
    kinds["mistral"] = (json.loads(tok.to_str()), ["<s>", "</s>", "[INST]", "[/INST]"])

    # Metaspace that splits on "▁", no byte fallback (rare characters become <unk>, unfused),
    # the Metaspace decoder, and the legacy add_prefix_space field instead of prepend_scheme.
    data = metaspace_base(byte_fallback=False, fuse_unk=False)
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    data["decoder"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    kinds["metaspace_unk"] = (data, ["<s>", "</s>"])
    return kinds


def expectations(tok, names):
    texts = CORPUS + EXTRA_TEXTS + special_texts(names)
    texts += random_texts(150, seed=7)
    texts += ["".join(pair) for pair in zip(random_texts(50, seed=8), special_texts(names) * 9)]
    cases = []
    for text in texts:
        tok.encode_special_tokens = False
        with_special = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        plain = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        cases.append({"text": text, "ids_with_special": with_special, "ids_plain": plain,
                      "decoded_with_special": tok.decode(with_special, skip_special_tokens=False),
                      "decoded_plain": tok.decode(plain, skip_special_tokens=False)})
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    rng = random.Random(1234)
    sequences = [[i] for i in range(vocab_size)]
    sequences += [[rng.randrange(vocab_size) for _ in range(rng.randrange(1, 24))]
                  for _ in range(200)]
    decodes = [{"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)}
               for ids in sequences]
    specials = {name: tok.token_to_id(name) for name in names}
    return {"tokenizers_version": tokenizers.__version__, "vocab_size": vocab_size,
            "special_tokens": specials, "cases": cases, "decodes": decodes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write <kind>/ folders into")
    args = parser.parse_args()
    kinds = build_kinds()
    for kind, (data, names) in kinds.items():
        folder = os.path.join(args.out, kind)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "tokenizer.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(data, file, ensure_ascii=False, indent=1)
        # Expectations come from the file as written, so the legacy forms in it are exercised.
        tok = Tokenizer.from_file(path)
        with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as file:
            json.dump(expectations(tok, names), file, ensure_ascii=False)
    print(f"tokenizer_parity.py: wrote {len(kinds)} kinds to {args.out} "
          f"(tokenizers {tokenizers.__version__})")


if __name__ == "__main__":
    main()
