#!/usr/bin/env python3
"""Check that imports between tokend's top-level modules point down, never up or in a circle.

Run from anywhere: `python3 scripts/check-layers.py` (`--explain` prints the table,
`--self-test` checks the checker on small made-up trees).

Every `src/**/*.rs` belongs to a top-level module: `src/foo.rs` and `src/foo/**` are `foo`;
`main.rs`, `lib.rs` and items defined at the crate root (`crate::FastMap`) are `crate`. An
import is any `crate::X` path (in `use`, `pub use` or inline in code) and any `super::` path
that climbs out of its top-level module; comments, doc comments and string literals do not
count. A module may import modules of its own layer or of lower layers, and the top-level
modules must not import each other in a circle. Exit status 1 on any violation or cycle.
"""

import os
import re
import signal
import sys
from collections import defaultdict
from pathlib import Path

# Layers, top (imports everything below) to bottom (imports nothing above).
LAYER_ORDER = ["entry", "http", "state", "domain", "storage", "foundations"]

# Every top-level module in src/ must have a row here; new modules get one when added.
LAYERS = {
    # entry: builds everything, nothing imports it
    "crate": "entry",  # main.rs and lib.rs (lib.rs holds only the module list)
    "cli": "entry",
    "app": "entry",
    # HTTP: parses requests, maps errors to status codes
    "routes": "http",
    "auth": "http",  # the bearer-token extractor
    "forwarded": "http",  # what forwarding headers are worth: client address, original URI
    "tls": "http",  # how the server speaks HTTPS; its settings types belong in config
    # shared state: what handlers get
    "state": "state",  # AppState (planned: issue 17)
    # domain
    "accounts": "domain",
    "tokens": "domain",
    "revocation": "domain",  # planned
    "oauth": "domain",
    "federation": "domain",
    "cleanup": "domain",
    "notify": "domain",
    "audit": "domain",
    "usage": "domain",
    "client": "domain",  # tokend's own API client, for the CLI verbs and the agent
    # storage: diesel only here
    "db": "storage",
    # foundations: plain types every layer may use
    "config": "foundations",
    "error": "foundations",
    "time": "foundations",
    "scope": "foundations",
    "telemetry": "foundations",  # metrics are recorded from every layer, db included
    "log_budget": "foundations",  # how many log lines a second a noisy event may write
    "fastmap": "foundations",  # the hot path's concurrent map type
}

RANK = {layer: len(LAYER_ORDER) - i for i, layer in enumerate(LAYER_ORDER)}  # higher = upper


def rank(module):
    return RANK.get(LAYERS.get(module), 0)

TOKEN = re.compile(
    r"\bmod\s+(?P<mod>\w+)\s*\{"  # an inline module opens
    r"|(?P<open>\{)|(?P<close>\})"
    r"|(?<![\w$])(?P<root>crate|super)(?P<supers>(?:\s*::\s*super\b)*)"
    r"\s*::\s*(?P<next>\{|\*|\w+)"
)
CHAR_LITERAL = re.compile(r"'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.))'")
RAW_STRING = re.compile(r'b?r(#*)"')
PATH_STRING = re.compile(r"(?:crate|super)(?:::\w+)+")  # a path in an attribute string


def strip(text):
    """The text with comments and string/char literals blanked out; line numbers unchanged."""
    out, i, n = [], 0, len(text)

    def blank(s):
        return re.sub(r"[^\n]", " ", s)

    while i < n:
        c = text[i]
        prev = text[i - 1] if i else " "
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
        elif c in "rb" and not (prev.isalnum() or prev == "_") and RAW_STRING.match(text, i):
            hashes = RAW_STRING.match(text, i).group(1)
            end = text.find('"' + hashes, RAW_STRING.match(text, i).end())
            j = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            if PATH_STRING.fullmatch(text, i + 1, j - 1):  # serde's `with = "crate::time::x"`
                out.append(" " + text[i + 1 : j - 1] + " ")
                i = j
                continue
        elif c == "'" and CHAR_LITERAL.match(text, i):
            j = CHAR_LITERAL.match(text, i).end()
        else:
            out.append(c)
            i += 1
            continue
        out.append(blank(text[i:j]))
        i = j
    return "".join(out)


def module_path(path):
    """src/tokens/push/tls.rs -> ["tokens", "push", "tls"]; src/tokens/mod.rs -> ["tokens"]."""
    parts = list(path.relative_to("src").with_suffix("").parts)
    if parts[-1] == "mod" or parts in (["lib"], ["main"]):
        parts.pop()
    return parts


def group_heads(text, start):
    """First segment of each item of the `{...}` use group opening at text[start]."""
    depth, i = 0, start
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            break
        i += 1
    items, depth, item = [], 0, []
    for ch in text[start + 1 : i]:
        if ch == "," and depth == 0:
            items.append("".join(item))
            item = []
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        item.append(ch)
    items.append("".join(item))
    heads = [re.match(r"\s*(\w+|\*)", it) for it in items]
    return [h.group(1) for h in heads if h and h.group(1) != "self"]


def imports(path, modules):
    """(line, target top-level module, shown name) for each path that leaves the file's module."""
    text = strip(path.read_text(encoding="utf-8"))
    file_path = module_path(path)
    stack, depth = [], 0  # open inline modules: (name, brace depth they opened at)
    for m in TOKEN.finditer(text):
        if m.group("mod"):
            stack.append((m.group("mod"), depth))
            depth += 1
        elif m.group("open"):
            depth += 1
        elif m.group("close"):
            depth -= 1
            if stack and stack[-1][1] == depth:
                stack.pop()
        else:
            depth += m.group("next") == "{"  # the group's `}` closes it
            if m.group("root") == "super":
                here = file_path + [name for name, _ in stack]
                climbs = 1 + m.group("supers").count("super")
                if climbs != len(here):  # still inside this top-level module (or invalid)
                    continue
            line = text.count("\n", 0, m.start()) + 1
            nxt = m.group("next")
            for head in group_heads(text, m.start("next")) if nxt == "{" else [nxt]:
                target = head if head in modules else "crate"
                shown = head if head in modules else f"crate::{head}"
                yield line, target, shown


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def path_back(graph, start, goal):
    """A shortest import path from start to goal (breadth first)."""
    came = {start: None}
    queue = [start]
    for v in queue:
        if v == goal:
            break
        for w in sorted(graph.get(v, ())):
            if w not in came:
                came[w] = v
                queue.append(w)
    path, v = [], goal
    while v is not None:
        path.append(v)
        v = came[v]
    return path[::-1]


def explain():
    print("Layers, top to bottom. A module may import its own layer (without a cycle) or lower.")
    for layer in LAYER_ORDER:
        names = sorted(m for m, l in LAYERS.items() if l == layer)
        print(f"  {layer:<12} {', '.join(names)}")


def check():
    """(problems, files, imports) for the tree under ./src."""
    files = sorted(Path("src").rglob("*.rs"))
    owner = {f: (module_path(f) or ["crate"])[0] for f in files}
    modules = set(owner.values()) - {"crate"}
    problems = [
        f"{next(f for f in files if owner[f] == m)}: module {m} has no layer: add it to LAYERS"
        for m in sorted(modules - LAYERS.keys())
    ]
    edges = defaultdict(list)  # (from, to) -> ["src/x.rs:12", ...]
    count, seen = 0, set()
    for f in files:
        src = owner[f]
        for line, dst, shown in imports(f, modules):
            if dst == src or (f, line, shown) in seen:
                continue
            seen.add((f, line, shown))
            count += 1
            edges[src, dst].append(f"{f}:{line}")
            if src in LAYERS and dst in LAYERS and rank(dst) > rank(src):
                problems.append(f"{f}:{line}: {src} ({LAYERS[src]}) → {shown} ({LAYERS[dst]})")
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    for component in cycles(graph):
        problems.append(f"cycle among {len(component)} modules: {', '.join(component)}")
        for a, b in sorted(edges):  # the edges that close it: upward or within one layer
            if a in component and b in component and rank(a) <= rank(b):
                where = edges[a, b]
                more = f" (+{len(where) - 1} more)" if len(where) > 1 else ""
                back = " → ".join(path_back(graph, b, a))
                problems.append(f"  {a} → {b}: {where[0]}{more}; back: {back}")
    return problems, files, count


def self_test():
    """The check catches what it is for: an upward import, a cycle, a module without a layer;
    and ignores comments, strings and paths that stay inside their module."""
    import tempfile

    base = {"config/mod.rs": "\n", "routes/mod.rs": "\n", "app.rs": "\n"}
    cases = {
        "clean": ({"db/mod.rs": "use crate::config::Settings; // crate::routes::x\n",
                   "db/x.rs": 'use super::y; const S: &str = "see crate::app::y";\n'}, []),
        "upward": ({"db/mod.rs": "use crate::{config, routes::x};\n"},
                   ["src/db/mod.rs:1: db (storage) → routes (http)"]),
        "attribute path": ({"db/mod.rs": '#[serde(with = "crate::routes::x")]\n'},
                           ["src/db/mod.rs:1: db (storage) → routes (http)"]),
        "cycle": ({"oauth/a.rs": "use crate::federation::x;\n",
                   "federation/b.rs": "fn f() { crate::oauth::y(); }\n"},
                  ["cycle among 2 modules: federation, oauth"]),
        "no layer": ({"newthing.rs": "\n"},
                     ["src/newthing.rs: module newthing has no layer: add it to LAYERS"]),
    }
    failed = 0
    here = os.getcwd()
    for name, (tree, expected) in cases.items():
        with tempfile.TemporaryDirectory() as root:
            for rel, text in {**base, **tree}.items():
                path = Path(root, "src", rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            os.chdir(root)
            try:
                problems = check()[0]
            finally:
                os.chdir(here)
        missing = [e for e in expected if e not in problems]
        if missing or (not expected and problems):
            failed += 1
            print(f"self-test {name}: expected {expected}, got {problems}")
    print(f"check-layers self-test: {len(cases) - failed} of {len(cases)} cases pass")
    return 1 if failed else 0


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    if "--explain" in sys.argv[1:]:
        explain()
        return 0
    if "--self-test" in sys.argv[1:]:
        return self_test()
    os.chdir(Path(__file__).resolve().parent.parent)  # the repository root
    problems, files, count = check()
    if not files:
        print("check-layers: no src/**/*.rs next to scripts/", file=sys.stderr)
        return 2
    if problems:
        print("\n".join(problems))
        return 1
    print(f"layers: ok ({len(files)} files, {count} imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
