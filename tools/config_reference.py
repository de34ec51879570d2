#!/usr/bin/env python3
"""Prints the config reference as a Markdown table, read from runtime/config/ft_config.proto.

    python3 tools/config_reference.py > /tmp/table.md   # then paste into README.md
"""
import pathlib
import re

PROTO = pathlib.Path(__file__).resolve().parent.parent / "runtime/config/ft_config.proto"
FIELD = re.compile(
    r'optional\s+(\w+)\s+(\w+)\s*=\s*\d+\s*\[(?:default\s*=\s*("(?:[^"\\]|\\.)*"|[^,\]]+)\s*,\s*)?'
    r'\(doc\)\s*=\s*"((?:[^"\\]|\\.)*)"\]')


def main():
    text = PROTO.read_text()
    messages = {}
    for name, body in re.findall(r"message (\w+) \{(.*?)\n\}", text, re.S):
        messages[name] = FIELD.findall(body)
    rows = []

    def walk(message, prefix):
        for type_, field, default, doc in messages[message]:
            if type_ in messages:
                walk(type_, prefix + field + ".")
                continue
            default = default.strip() if default else ('""' if type_ == "string" else "")
            doc = doc.replace('\\"', '"').replace("|", "\\|")
            rows.append(f"| `{prefix}{field}` | `{default}` | {doc} |")

    walk("RunConfig", "")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
