#!/usr/bin/env python3
"""Module cycles between the files of each crate.

For every crate under crates/ (or the crate directories given), builds the graph
of references between its source files (`use crate::a::b`, `crate::a::b` in
expressions, `super::x`, `self::x`, and `use a::...` of a child module), each
reference pointing at the deepest module file that exists, and prints the
strongly connected components with more than one file.

Not counted as cycles: a child naming one of its ancestors (`super::Ctx` from
`controller/budgets.rs`, `crate::Error` anywhere), since a child using its
parent's shared types is how Rust modules are meant to nest. Test code counts
(an inline `mod tests` belongs to its file); pass --no-tests to leave out
`#[cfg(test)]` modules and `tests.rs` files.

Exit status: 0 no cycle, 1 cycles found.

    hack/modcycles.py                      # every crate
    hack/modcycles.py crates/graceful-drain crates/auto-monitor
"""

import argparse
import pathlib
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_of(src: pathlib.Path, f: pathlib.Path) -> tuple:
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return ()
    return tuple(parts)


def strip_comments_and_strings(text: str) -> str:
    """Blanks comments, strings and char literals (keeps newlines and braces
    outside them), so braces and paths are read from code only."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not re.match(r"[A-Za-z0-9_]", text[i - 1])):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def inline_mods(code: str):
    """(start, end, name, is_test) spans of inline `mod name { ... }` blocks."""
    spans = []
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
            j += 1
        before = code[max(0, m.start() - 80):m.start()]
        spans.append((m.start(), j, m.group(1), "cfg(test)" in before))
    return spans


def expand_use(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    i = tree.find("{")
    if i < 0:
        return [tree]
    prefix = tree[:i]
    depth, parts, cur = 0, [], ""
    for ch in tree[i + 1:-1]:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand_use(prefix + part)]


def references(code: str, here: tuple, children: set):
    """Module paths (tuples) the code refers to, resolved against `here`."""
    refs = []
    mods = inline_mods(code)

    def base_at(pos: int) -> tuple:
        depth = sum(1 for s, e, _, _ in mods if s < pos < e)
        return here + ("<inline>",) * depth

    def resolve(path: str, pos: int):
        segs = [s for s in path.split("::") if s]
        if not segs:
            return
        base = base_at(pos)
        if segs[0] == "crate":
            refs.append(tuple(segs[1:]))
            return
        if segs[0] in ("super", "self"):
            cur = list(base)
            while segs and segs[0] in ("super", "self"):
                if segs.pop(0) == "super":
                    cur = cur[:-1]
            cur = [c for c in cur if c != "<inline>"]
            refs.append(tuple(cur) + tuple(segs))
            return
        if segs[0] in children and base == here:
            refs.append(here + tuple(segs))

    for m in re.finditer(r"\buse\s+([^;]+);", code):
        for p in expand_use(m.group(1)):
            resolve(re.sub(r"\bas\b.*$", "", p), m.start())
    for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::" + IDENT + r")+)", code):
        resolve(m.group(1), m.start())
    return refs


def strip_tests(code: str) -> str:
    for s, e, _, is_test in sorted(inline_mods(code), reverse=True):
        if is_test:
            code = code[:s] + "\n" * code.count("\n", s, e) + code[e:]
    return code


def crate_graph(crate: pathlib.Path, tests: bool):
    src = crate / "src"
    files = {}
    for f in sorted(src.rglob("*.rs")):
        if not tests and f.name == "tests.rs":
            continue
        files[module_of(src, f)] = f
    mods = set(files)
    edges = {m: set() for m in mods}
    for m, f in files.items():
        code = strip_comments_and_strings(f.read_text())
        if not tests:
            code = strip_tests(code)
        children = {c[len(m)] for c in mods if len(c) == len(m) + 1 and c[:len(m)] == m}
        for ref in references(code, m, children):
            target = ref
            while target and target not in mods:
                target = target[:-1]
            if target not in mods or target == m:
                continue
            if m[:len(target)] == target:
                continue  # a child naming an ancestor
            edges[m].add(target)
    return files, edges


def sccs(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("crates", nargs="*", help="crate directories (default: crates/*)")
    ap.add_argument("--no-tests", action="store_true", help="leave out #[cfg(test)] modules and tests.rs files")
    args = ap.parse_args()
    root = pathlib.Path(__file__).resolve().parent.parent
    crates = [pathlib.Path(c) for c in args.crates] or sorted(p.parent for p in (root / "crates").glob("*/src"))
    found = 0
    for crate in crates:
        files, edges = crate_graph(crate, not args.no_tests)
        comps = sccs(files, edges)
        name = crate.name
        if not comps:
            print(f"{name}: no cycle ({len(files)} files)")
            continue
        for comp in comps:
            found += 1
            members = sorted(comp)
            print(f"{name}: cycle between " + ", ".join(str(files[m].relative_to(crate / 'src')) for m in members))
            for m in members:
                for t in sorted(edges[m] & set(comp)):
                    print(f"    {files[m].relative_to(crate / 'src')} -> {files[t].relative_to(crate / 'src')}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
