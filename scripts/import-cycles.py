#!/usr/bin/env python3
"""Files in src/ that import each other (issue 24, item 3: "No file imports a file that imports
it back, anywhere in src/").

Usage: scripts/import-cycles.py [--edges] [--known FOLDER]... [SRC_DIR]   (default: the src/
beside this script's directory; --edges: print every import found, "a -> b", first; --known
FOLDER: cycles wholly inside FOLDER, relative to SRC_DIR, e.g. "stream/", are listed as known and
do not fail the run: CI's way of holding the line while a known circle waits for its redesign)

Prints every pair of files that import each other, with the lines that do it, then every larger
cycle (a strongly connected component of more than two files, listed by its files). Exits 1 if
there is any cycle, 0 if there is none.

What counts as an import of file B by file A:
  - a `use` declaration in A (any visibility, nested `{...}` trees expanded) whose path starts
    with `crate::`, `super::` or `self::`, or a path of that kind in A's code (`super::x::f()`,
    `crate::ring::usable_cpus()`), that names a module B is the file of, or an item in it.
  - The path is followed through the module tree (built from `mod x;` declarations from
    src/lib.rs and src/main.rs, `#[path = "..."]` honoured) as far as its segments are modules;
    the rest names an item of the last module, and the import is of that module's file
    (`a/b.rs` or `a/b/mod.rs`). An item a mod.rs re-exports (`pub use child::X`) counts as
    that mod.rs, not as the child's file.
  - An inline module (`mod x { ... }`) is part of its file: `super::` inside it is resolved
    from the inline module, and its imports are its file's.

What does not count (the limits):
  - A module and its own submodules are a tree, not a cycle: a path from a file down to a file
    of one of its own descendant modules (`mod x;` plus `use x::...`, `pub use x::Y`,
    `x::f()`) is not an edge; a child's `use super::...` is. So a cycle that goes through a
    parent's own children (A -> B/mod.rs -> B/c.rs -> A, e.g. A naming an item B/mod.rs
    re-exports from B/c.rs) is not seen.
  - Test code: files reached only through a `#[cfg(test)]` module (`#[path = "x_tests.rs"]
    mod tests;`), inline `#[cfg(test)]` modules, and `#[cfg(test)]` `use` declarations are
    skipped. Other test-only code (a `#[cfg(test)] fn` using `crate::...` inline) is not
    recognised as such and counts.
  - Paths that start with a plain name (`use ways::X`, `many::run()`) are taken as a child
    module's (downward, never an edge) or another crate's; names brought in by a `use` and
    then used as a path prefix are counted once, at the `use`.
  - The binary crate (src/main.rs, src/cli/) and the library (src/lib.rs) are separate:
    `ringread::...` paths in the binary go to the library and cannot be part of a cycle.
  - Macros: `$crate::` counts as `crate::`; paths built inside macros otherwise are not seen.
  - Comments, strings and char literals are blanked before parsing (doc links are not imports);
    the lexing is a regex approximation of Rust's, good for this code base.
"""

import os
import re
import sys
from collections import defaultdict


def blank(text):
    """Returns (code, keep): both the length of `text`, with comments blanked; in `code` string
    and char literals are blanked too (quotes kept), in `keep` they are kept."""
    code = list(text)
    keep = list(text)
    i, n = 0, len(text)

    def wipe(a, b, strings_too):
        for k in range(a, b):
            if text[k] != "\n":
                code[k] = " "
                if not strings_too:
                    keep[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j, False)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j, False)
            i = j
        elif (
            c in "rb"
            and not (i and (text[i - 1].isalnum() or text[i - 1] == "_"))
            and re.match(r'b?r#*"', text[i:i + 16])
        ):  # a raw string: r"...", r#"..."#, br"..."
            m = re.match(r'b?r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            wipe(i + m.end(), end - 1 - len(m.group(1)), True)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i + 1, j, True)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:i + 12])
            if m:
                wipe(i + 1, i + m.end() - 1, True)
                i += m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(code), "".join(keep)


def matching_brace(code, i):
    """The index just past the `}` that closes the `{` at `i`."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


ATTRS = r"((?:#\s*\[[^\]]*\]\s*)*)"
VIS = r"(?:pub(?:\s*\([^)]*\))?\s+)?"
MOD_RE = re.compile(ATTRS + VIS + r"\bmod\s+(r#)?(\w+)\s*([;{])")
USE_RE = re.compile(ATTRS + VIS + r"\buse\s+([^;]*);")
PATH_RE = re.compile(r"(?<![\w:])\$?\b(crate|super|self)((?:\s*::\s*\w+)+)")


def is_test(attrs):
    for a in re.findall(r"#\s*\[([^\]]*)\]", attrs):
        a = a.replace(" ", "")
        if a.startswith("cfg(") and re.search(r"\btest\b", a) and "not(" not in a:
            return True
    return False


def use_paths(tree):
    """The paths (lists of segments) of a use tree (`a::{b, c::{self, d as e}}`, `a::*`)."""
    tokens = re.findall(r"::|\{|\}|,|\*|\w+", tree)
    pos = 0

    def parse(prefix):
        nonlocal pos
        out = []
        segs = list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    if tokens[pos] == ",":
                        pos += 1
                        continue
                    out += parse(segs)
                pos += 1
                return out
            if t in (",", "}"):
                break
            if t == "::":
                pos += 1
                continue
            if t == "as":
                pos += 2
                continue
            if t == "*":
                pos += 1
                continue
            pos += 1
            if t == "self" and prefix and len(segs) == len(prefix):
                continue  # `a::{self}`: the module a itself
            segs.append(t)
        out.append(segs)
        return out

    return parse([])


class Tree:
    def __init__(self, src):
        self.src = src
        self.modules = {}  # (crate, path tuple) -> file (relative to src)
        self.file_module = {}  # file -> (crate, path tuple) of the module it is the file of
        self.test_files = set()
        self.parsed = {}  # file -> (code, keep, inline spans)

    def child_file(self, parent_file, name, path_attr):
        d = os.path.dirname(parent_file)
        base = os.path.basename(parent_file)
        if path_attr:
            return os.path.normpath(os.path.join(d, path_attr))
        if base not in ("mod.rs", "lib.rs", "main.rs"):
            d = os.path.join(d, base[:-3])
        for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
            if os.path.exists(os.path.join(self.src, cand)):
                return cand
        return None

    def load(self, crate, file, mod, test):
        self.modules[(crate, mod)] = file
        self.file_module[file] = (crate, mod)
        if test:
            self.test_files.add(file)
        with open(os.path.join(self.src, file), encoding="utf-8") as f:
            code, keep = blank(f.read())
        spans = []  # (start, end, module path, test) of inline modules
        for m in MOD_RE.finditer(code):
            attrs, name, end = m.group(1), m.group(3), m.group(4)
            outer = self.inline_at(spans, m.start(), mod)
            t = test or is_test(attrs) or outer[1]
            if end == "{":
                close = matching_brace(code, m.end() - 1)
                path = outer[0] + (name,)
                spans.append((m.end() - 1, close, path, t))
                self.modules[(crate, path)] = file
            else:
                pa = re.search(r'#\s*\[\s*path\s*=\s*"([^"]*)"', keep[m.start():m.end()])
                child = self.child_file(file, name, pa.group(1) if pa else None)
                if child is not None and outer[0] == mod:
                    self.load(crate, child, mod + (name,), t)
        self.parsed[file] = (code, spans)

    @staticmethod
    def inline_at(spans, pos, mod):
        """The innermost module at `pos` and whether it is test code."""
        best = (mod, False, -1)
        for a, b, path, t in spans:
            if a <= pos < b and a > best[2]:
                best = (path, t, a)
        return best[0], best[1]

    def resolve(self, crate, here, segs):
        """The module a path names (as far as its segments are modules), or None."""
        if not segs:
            return None
        first = segs[0].lstrip("$")
        if first == "crate":
            mod, rest = (), segs[1:]
        elif first in ("super", "self"):
            mod, rest = here, segs
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    mod = mod[:-1]
                rest = rest[1:]
        else:
            return None  # a child module (downward) or another crate
        for s in rest:
            if (crate, mod + (s,)) in self.modules:
                mod = mod + (s,)
            else:
                break
        return mod

    def edges(self):
        """{(a, b): [(line, path text), ...]}: file a imports file b."""
        out = defaultdict(list)
        for file, (code, spans) in self.parsed.items():
            if file in self.test_files:
                continue
            crate, fmod = self.file_module[file]
            uses = []  # spans of use declarations, their paths parsed whole
            found = []  # (pos, segs, text)
            for m in USE_RE.finditer(code):
                uses.append((m.start(), m.end()))
                if is_test(m.group(1)):
                    continue
                for segs in use_paths(m.group(2)):
                    found.append((m.start(), segs, " ".join(m.group(0).split())))
            for m in PATH_RE.finditer(code):
                if any(a <= m.start() < b for a, b in uses):
                    continue
                segs = [m.group(1)] + re.findall(r"\w+", m.group(2))
                found.append((m.start(), segs, "::".join(segs)))
            for pos, segs, text in found:
                here, test = self.inline_at(spans, pos, fmod)
                if test:
                    continue
                target = self.resolve(crate, here, segs)
                if target is None:
                    continue
                tfile = self.modules[(crate, target)]
                if tfile == file:
                    continue
                tmod = self.file_module[tfile][1]
                if tmod[: len(fmod)] == fmod:
                    continue  # down to one of this file's own submodules: the tree
                line = code.count("\n", 0, pos) + 1
                if (line, text) not in out[(file, tfile)]:
                    out[(file, tfile)].append((line, text))
        return out


def sccs(nodes, succ):
    """Tarjan's strongly connected components."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
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
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    show = "--edges" in args
    args = [a for a in args if a != "--edges"]
    known = []
    while "--known" in args:
        i = args.index("--known")
        known.append(args[i + 1])
        del args[i : i + 2]

    def is_known(files):
        return any(all(f.startswith(k) for f in files) for k in known)
    src = args[0] if args else os.path.join(here, "..", "src")
    tree = Tree(src)
    for crate, root in (("lib", "lib.rs"), ("bin", "main.rs")):
        if os.path.exists(os.path.join(src, root)):
            tree.load(crate, root, (), False)
    edges = tree.edges()

    def show_path(f):
        return os.path.relpath(os.path.join(src, f))

    if show:
        for a, b in sorted(edges):
            print(f"{show_path(a)} -> {show_path(b)}")
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)

    pairs = sorted((a, b) for a, b in edges if a < b and (b, a) in edges)
    for a, b in pairs:
        print(f"{show_path(a)} <-> {show_path(b)}")
        for x, y in ((a, b), (b, a)):
            for line, text in edges[(x, y)]:
                print(f"    {show_path(x)}:{line}: {text}")
    big = [c for c in sccs(tree.parsed.keys(), succ) if len(c) > 2]
    for c in big:
        print(f"cycle of {len(c)} files: " + ", ".join(show_path(f) for f in c))
        for a in c:
            for b in c:
                for line, text in edges.get((a, b), []):
                    print(f"    {show_path(a)}:{line}: {text}")
    new = [p for p in pairs if not is_known(p)] + [c for c in big if not is_known(c)]
    if pairs or big:
        print(f"{len(pairs)} pair(s) of files import each other, {len(big)} larger cycle(s); "
              f"{len(new)} not inside a known folder ({', '.join(known) or 'none given'})",
              file=sys.stderr)
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
