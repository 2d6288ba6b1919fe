#!/usr/bin/env python3
"""Writes the cases of tests/corpus/bad_inputs.txt as files.

make_cases.py <corpus> <out dir> <instance> <plugin dir> <state dir>
Config cases are written to <out dir>/<name>.toml; state cases are staged in
<out dir>/state/<name>.toml, to be moved into <state dir> one at a time (a
move is what the daemon's watch sees for every kind of file). Prints one line
per case: name, where, staged path, final path, expected text (tab-separated).
"""
import os
import socket
import sys

corpus, out_dir, instance, plugin_dir, state_dir = sys.argv[1:6]
HUGE = 64 * 1024 * 1024 + 1  # one byte past the reader's limit


def parse(path):
    cases, case = [], None
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith("=== "):
            case = {"name": line[4:].strip(), "make": None, "where": "config", "lines": []}
            cases.append(case)
        elif case is None:
            continue
        elif not case["lines"] and line.startswith("expect: ") and "expect" not in case:
            case["expect"] = line[len("expect: "):]
        elif not case["lines"] and line.startswith("make: "):
            case["make"] = line[len("make: "):].strip()
        elif not case["lines"] and line.startswith("where: "):
            case["where"] = line[len("where: "):].strip()
        else:
            case["lines"].append(line)
    return cases


def body(case):
    text = "\n".join(case["lines"]).rstrip("\n") + "\n"
    text = text.replace("{bpf}", f'[bpf]\ninstance = "{instance}"')
    text = text.replace("{plugins}", f'[plugins]\ndir = "{plugin_dir}"')
    return text


def make(case, path):
    kind = case["make"]
    if kind is None or kind == "as-is":
        with open(path, "w", encoding="utf-8") as f:
            f.write(body(case) if kind is None else "\n".join(case["lines"]))
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "empty":
        open(path, "w").close()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind in ("dev-zero", "dev-null"):
        return "/dev/zero" if kind == "dev-zero" else "/dev/null"
    elif kind == "symlink-dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "symlink-fifo":
        os.mkfifo(path + ".fifo")
        os.symlink(path + ".fifo", path)
    elif kind == "huge":
        with open(path, "w") as f:
            f.write('[node]\nname = "n"\n')
            f.truncate(HUGE)
    elif kind == "missing":
        pass
    elif kind == "dangling-symlink":
        os.symlink(path + ".absent", path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
    else:
        sys.exit(f"{corpus}: case {case['name']}: unknown make: {kind}")
    return path


os.makedirs(os.path.join(out_dir, "state"), exist_ok=True)
seen = set()
for case in parse(corpus):
    name = case["name"]
    if name in seen or "expect" not in case:
        sys.exit(f"{corpus}: case {name}: duplicate or without expect:")
    seen.add(name)
    if case["where"] == "state":
        staged = make(case, os.path.join(out_dir, "state", name + ".toml"))
        final = os.path.join(state_dir, name + ".toml")
    else:
        staged = final = make(case, os.path.join(out_dir, name + ".toml"))
    expect = case["expect"].replace("{file}", final).replace("{plugin_dir}", plugin_dir)
    print("\t".join([name, case["where"], staged, final, expect]))
