#!/usr/bin/env python3
"""Writes the quickstart chat dataset: examples/quickstart/train.jsonl and valid.jsonl.

A synthetic task a tiny byte-level model (~1-2M parameters, context 128) learns in a few hundred
optimizer steps: the user message names one of five word games and gives a few words from a
vocabulary of 60; the assistant answers. The games are kept distinct so that a later adapter can
be trained to select one of them.

    reverse the words: red blue green  ->  green blue red
    uppercase: cat dog                  ->  CAT DOG
    count the words: a b c d            ->  4
    sort: pear apple fig                ->  apple fig pear
    first letters: sun tree box         ->  stb

Python 3 standard library only; the output is the same for every run with the same seed.
"""

import argparse
import json
import pathlib
import random

WORDS = [
    "red", "blue", "green", "gold", "pink", "gray",
    "cat", "dog", "fox", "owl", "bee", "cow",
    "apple", "pear", "fig", "plum", "lime", "grape",
    "sun", "moon", "star", "rain", "snow", "wind",
    "tree", "leaf", "rock", "sand", "lake", "hill",
    "box", "cup", "pen", "key", "book", "lamp",
    "bread", "milk", "egg", "rice", "soup", "cake",
    "run", "jump", "sing", "read", "swim", "walk",
    "big", "small", "fast", "slow", "warm", "cold",
    "one", "two", "ten", "car", "ship", "road",
]

# name -> (instruction prefix, answer from the word list, number of words drawn)
BEHAVIOURS = {
    "reverse": ("reverse the words: ", lambda words: " ".join(reversed(words)), (2, 5)),
    "uppercase": ("uppercase: ", lambda words: " ".join(words).upper(), (2, 5)),
    "count": ("count the words: ", lambda words: str(len(words)), (1, 7)),
    "sort": ("sort: ", lambda words: " ".join(sorted(words)), (2, 5)),
    "initials": ("first letters: ", lambda words: "".join(w[0] for w in words), (2, 6)),
}

# The rendered ChatML example (byte tokens) must stay under this length.
MAX_RENDERED_TOKENS = 120


def rendered_tokens(messages):
    """Byte-tokenizer length of the ChatML rendering: <|im_start|> role\\n content <|im_end|> \\n."""
    return sum(1 + len(m["role"].encode()) + 1 + len(m["content"].encode()) + 1 + 1
               for m in messages)


def make_example(rng, name):
    prefix, answer, (low, high) = BEHAVIOURS[name]
    words = rng.sample(WORDS, rng.randint(low, high))
    return [
        {"role": "user", "content": prefix + " ".join(words)},
        {"role": "assistant", "content": answer(words)},
    ]


def make_examples(count, seed):
    """`count` examples with distinct prompts, the behaviours in equal shares, in random order."""
    rng = random.Random(seed)
    names = list(BEHAVIOURS)
    seen = set()
    examples = []
    while len(examples) < count:
        messages = make_example(rng, names[len(examples) % len(names)])
        prompt = messages[0]["content"]
        if prompt in seen:
            continue
        seen.add(prompt)
        assert rendered_tokens(messages) < MAX_RENDERED_TOKENS, messages
        examples.append(messages)
    rng.shuffle(examples)
    return examples


def write_jsonl(path, examples):
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        for messages in examples:
            file.write(json.dumps({"messages": messages}, separators=(",", ":")) + "\n")


def main():
    repo = pathlib.Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=pathlib.Path, default=repo / "examples" / "quickstart")
    parser.add_argument("--train", type=int, default=3000, help="training examples")
    parser.add_argument("--valid", type=int, default=300, help="validation examples")
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args()

    examples = make_examples(args.train + args.valid, args.seed)
    train, valid = examples[:args.train], examples[args.train:]  # prompts are distinct: disjoint
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out_dir / "train.jsonl", train)
    write_jsonl(args.out_dir / "valid.jsonl", valid)
    lengths = [rendered_tokens(m) for m in examples]
    print(f"wrote {len(train)} training and {len(valid)} validation examples to {args.out_dir} "
          f"(rendered tokens: min {min(lengths)}, mean {sum(lengths) / len(lengths):.1f}, "
          f"max {max(lengths)})")


if __name__ == "__main__":
    main()
