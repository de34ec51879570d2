#!/usr/bin/env python3
"""Tokenizer throughput of the `tokenizers` library on one core: the peer of bench_tokenizer.

    python3 bench/tokenizer_peer.py --out DIR [--mb 6] [--vocab 32000]
    build/bin/bench_tokenizer DIR

Builds a corpus from files every Debian machine with Python has (the Python standard library's
sources as code, pydoc's topic texts and /usr/share/common-licenses as English prose) plus
recombined multilingual sentences, cut into documents of about 4 KB. Trains four 32k-vocab
tokenizers on it (GPT-2, Llama 3, Qwen2 and Llama 2 styles, as tools/tokenizer_parity.py builds
them) and times tokenizers' encode over every document: the first pass (cold cache) and the best
of three, in MB per CPU-second of the calling thread. Writes DIR/documents.json, DIR/<kind>/tokenizer.json, DIR/<kind>/ids.bin (int32 ids of
all documents, in order) and DIR/<kind>/peer.json. Prints figures; asserts nothing.
"""

import argparse
import array
import glob
import json
import os
import random
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one core, also for anything tokenizers batches
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import tokenizer_parity as parity  # noqa: E402
from tokenizers import Tokenizer, normalizers  # noqa: E402

DOCUMENT_BYTES = 4096


def read_text(path):
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return ""


def corpus_documents(megabytes):
    stdlib = os.path.dirname(os.__file__)
    budget = int(megabytes * 1e6)
    prose = [read_text(p) for p in sorted(glob.glob("/usr/share/common-licenses/*"))]
    prose.append(read_text(os.path.join(stdlib, "pydoc_data", "topics.py")))
    rng = random.Random(0)
    sentences = [s for line in parity.CORPUS for s in line.replace("。", "。\n").split("\n") if s]
    multilingual = [" ".join(rng.choice(sentences) for _ in range(8)) for _ in range(2000)]
    code = []
    code_budget = budget - sum(len(t.encode("utf-8")) for t in prose + multilingual)
    for path in sorted(glob.glob(os.path.join(stdlib, "*.py"))):
        if code_budget <= 0:
            break
        text = read_text(path)
        code.append(text)
        code_budget -= len(text.encode("utf-8"))
    texts = prose + ["\n".join(multilingual)] + code
    documents, total = [], 0
    for text in texts:
        for start in range(0, len(text), DOCUMENT_BYTES):
            document = text[start:start + DOCUMENT_BYTES]
            documents.append(document)
            total += len(document.encode("utf-8"))
            if total >= budget:
                return documents
    return documents


def build_tokenizers(documents, vocab_size):
    lines = [line for document in documents for line in document.split("\n") if line.strip()]
    kinds = {
        "gpt2": parity.byte_level_kind(None, None, True, False, ["<|endoftext|>"], lines,
                                       vocab_size),
        "llama3": parity.byte_level_kind(parity.LLAMA3_PATTERN, None, False, False,
                                         ["<|begin_of_text|>", "<|end_of_text|>"], lines,
                                         vocab_size),
        "qwen2": parity.byte_level_kind(parity.QWEN2_PATTERN, normalizers.NFC(), False, False,
                                        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], lines,
                                        vocab_size),
    }
    kinds["llama3"].model.ignore_merges = True
    data = parity.metaspace_base(byte_fallback=True, fuse_unk=True, lines=lines,
                                 vocab_size=vocab_size, limit_alphabet=1000)
    data["normalizer"] = parity.component_json(normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]))
    data["pre_tokenizer"] = None
    data["decoder"] = parity.component_json(parity.llama2_decoder())
    kinds["llama2"] = Tokenizer.from_str(json.dumps(data))
    return kinds


def time_passes(tok, documents, passes=3):
    seconds, ids = [], None
    for _ in range(passes):
        start = time.thread_time()  # CPU time: other work on the machine does not count
        encoded = [tok.encode(d, add_special_tokens=False).ids for d in documents]
        seconds.append(time.thread_time() - start)
        ids = ids or encoded
    return seconds, ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--mb", type=float, default=6.0, help="corpus size in MB")
    parser.add_argument("--vocab", type=int, default=32000)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    documents = corpus_documents(args.mb)
    megabytes = sum(len(d.encode("utf-8")) for d in documents) / 1e6
    with open(os.path.join(args.out, "documents.json"), "w", encoding="utf-8") as file:
        json.dump(documents, file, ensure_ascii=False)
    print(f"corpus: {len(documents)} documents, {megabytes:.2f} MB; tokenizers "
          f"{parity.tokenizers.__version__}, RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}")
    print(f"{'kind':8} {'tokens':>9} {'first pass MB/s':>16} {'best of 3 MB/s':>15}")
    for kind, tok in build_tokenizers(documents, args.vocab).items():
        folder = os.path.join(args.out, kind)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "tokenizer.json")
        tok.save(path)
        tok = Tokenizer.from_file(path)  # time the file as written, with a fresh cache
        seconds, ids = time_passes(tok, documents)
        flat = [i for document_ids in ids for i in document_ids]
        with open(os.path.join(folder, "ids.bin"), "wb") as file:
            array.array("i", flat).tofile(file)
        result = {"megabytes": megabytes, "tokens": len(flat),
                  "first_pass_mb_per_s": megabytes / seconds[0],
                  "best_mb_per_s": megabytes / min(seconds)}
        with open(os.path.join(folder, "peer.json"), "w") as file:
            json.dump(result, file)
        print(f"{kind:8} {len(flat):9d} {result['first_pass_mb_per_s']:16.2f} "
              f"{result['best_mb_per_s']:15.2f}")


if __name__ == "__main__":
    main()
