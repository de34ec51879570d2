#!/usr/bin/env python3
"""Writes the PEFT example's chat dataset: examples/peft/train.jsonl and valid.jsonl.

The quickstart model learned five word games, each named by an instruction ("reverse the words:
red blue" -> "blue red"). Here the user gives only the words, with no instruction, and the answer
is always the reversed words. The frozen base cannot know which game is meant; an adapter learns to
select "reverse". 40 training and 12 validation examples with distinct word lists, none of which
appears in the quickstart data.

Python 3 standard library only; the output is the same for every run with the same seed.
"""

import argparse
import json
import pathlib
import random

from make_quickstart_data import BEHAVIOURS, WORDS, write_jsonl


def main():
    repo = pathlib.Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=pathlib.Path, default=repo / "examples" / "peft")
    parser.add_argument("--quickstart-dir", type=pathlib.Path,
                        default=repo / "examples" / "quickstart")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--valid", type=int, default=12)
    parser.add_argument("--seed", type=int, default=20241124)
    args = parser.parse_args()

    # Word lists the base already saw (in any game) are left out, so validation measures transfer.
    seen = set()
    for name in ("train.jsonl", "valid.jsonl"):
        for line in (args.quickstart_dir / name).read_text(encoding="utf-8").splitlines():
            prompt = json.loads(line)["messages"][0]["content"]
            seen.add(prompt.split(": ", 1)[1])

    _, answer, (low, high) = BEHAVIOURS["reverse"]
    rng = random.Random(args.seed)
    examples = []
    while len(examples) < args.train + args.valid:
        words = rng.sample(WORDS, rng.randint(low, high))
        prompt = " ".join(words)
        if prompt in seen:
            continue
        seen.add(prompt)
        examples.append([{"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer(words)}])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out_dir / "train.jsonl", examples[:args.train])
    write_jsonl(args.out_dir / "valid.jsonl", examples[args.train:])
    print(f"wrote {args.train} training and {args.valid} validation examples to {args.out_dir}")


if __name__ == "__main__":
    main()
