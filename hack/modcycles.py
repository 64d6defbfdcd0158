#!/usr/bin/env python3
"""Module cycles between the files of each crate.

For every crate under crates/ (its src/ tree), builds the graph "file A refers to
an item of file B" from `use crate::...`, `use super::...`, `use self::...` and
inline `crate::x::y` / `super::x` paths, and prints the strongly connected
components of more than one file: each is a set of files that depend on each
other in a circle.

Not counted (issue 13, phase 2 brief): the `mod` declarations themselves, and
references between a file and its own ancestors or descendants (a child's
`super::Shared` or a parent's `child::Item`): those are one module family, not
a cycle between siblings. Test modules (`#[cfg(test)] mod ...` to the end of
the file) are left out unless --tests is given: they are not the architecture.

Usage: hack/modcycles.py [--tests] [--all-edges] [CRATE_DIR ...]
Exit status: 0 when no crate has a cycle, 1 otherwise.
"""

import os
import re
import sys

USE_RE = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.S)
INLINE_RE = re.compile(r"\b((?:crate|super|self)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)")
TEST_CUT_RE = re.compile(r"^\s*#\[cfg\(test\)\]\s*\n\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", re.M)
COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
STRING_RE = re.compile(r'r#*"(?:.|\n)*?"#*|"(?:\\.|[^"\\])*"')


def module_files(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                key = ()
            elif rel[-1] == "mod":
                key = tuple(rel[:-1])
            else:
                key = tuple(rel)
            # A binary's main.rs and a lib.rs side by side: lib wins the root.
            if key == () and key in mods and rel == ["main"]:
                continue
            mods[key] = path
    return mods


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (renames and globs dropped)."""
    tree = tree.strip()
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                prefix = tree[:start].rstrip(":").strip()
                inner = tree[start + 1 : i]
                parts, d, last = [], 0, 0
                for j, c in enumerate(inner):
                    if c == "{":
                        d += 1
                    elif c == "}":
                        d -= 1
                    elif c == "," and d == 0:
                        parts.append(inner[last:j])
                        last = j + 1
                parts.append(inner[last:])
                out = []
                for p in parts:
                    p = p.strip()
                    if not p:
                        continue
                    for sub in expand(p):
                        out.append(prefix + "::" + sub if prefix and sub != "self" else prefix or sub)
                return out
    tree = re.sub(r"\s+as\s+\w+$", "", tree)
    tree = re.sub(r"::\*$", "", tree)
    return [tree]


def resolve(path, here, mods):
    """The module path a `crate::`/`super::`/`self::`/child path names, from module `here`."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] in ("super", "self"):
        base = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                if not base:
                    return None
                base.pop()
            segs = segs[1:]
    elif tuple(here) + (segs[0],) in mods:
        # A child module named without `self::` (2018 paths).
        base = list(here)
    else:
        return None
    full = base + segs
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in mods:
            return tuple(full[:n])
    return None


def related(a, b):
    """Whether one module is the other's ancestor (or the same)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def edges_of(mods, tests, all_edges):
    graph = {m: set() for m in mods}
    for here, path in mods.items():
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if not tests:
            cut = TEST_CUT_RE.search(text)
            if cut:
                text = text[: cut.start()]
        text = COMMENT_RE.sub("", STRING_RE.sub('""', text))
        refs = []
        for m in USE_RE.finditer(text):
            refs.extend(expand(m.group(1)))
        refs.extend(m.group(1) for m in INLINE_RE.finditer(text))
        for r in refs:
            target = resolve(r, here, mods)
            if target is None or target == here:
                continue
            if not all_edges and related(here, target):
                continue
            graph[here].add(target)
    return graph


def sccs(graph):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    tests = "--tests" in argv
    all_edges = "--all-edges" in argv
    dirs = [a for a in argv if not a.startswith("--")]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not dirs:
        base = os.path.join(root, "crates")
        dirs = sorted(os.path.join(base, d) for d in os.listdir(base))
    found = False
    for d in dirs:
        src = os.path.join(d, "src")
        if not os.path.isdir(src):
            continue
        mods = module_files(src)
        graph = edges_of(mods, tests, all_edges)
        cycles = [c for c in sccs(graph) if len(c) > 1]
        name = os.path.basename(os.path.normpath(d))
        if not cycles:
            print(f"{name}: no module cycle ({len(mods)} files)")
            continue
        found = True
        for c in cycles:
            files = sorted(os.path.relpath(mods[m], d) for m in c)
            print(f"{name}: cycle between {', '.join(files)}")
            for m in sorted(c):
                for t in sorted(graph[m] & set(c)):
                    print(f"    {os.path.relpath(mods[m], d)} -> {os.path.relpath(mods[t], d)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
