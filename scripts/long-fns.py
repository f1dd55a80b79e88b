#!/usr/bin/env python3
"""Functions in src/ longer than a limit (issue: "no function in src/ over 100 lines, benchmark and
command included").

Usage: scripts/long-fns.py [--limit N] [--known FOLDER]... [SRC_DIR]   (default: 100 lines, the
src/ beside this script's directory; --known FOLDER: functions in files under FOLDER, relative to
SRC_DIR, e.g. "stream/", are listed as known and do not fail the run: CI's way of holding the line
while a folder waits for its redesign)

Prints `file:line name length` for every function longer than the limit, longest first, marking
the known ones. Exits 1 if there is one outside a known folder, 0 if there is none.

What is measured:
  - Every `fn` item with a body: free functions, methods, trait default methods, functions nested
    in other functions, in test modules too (a nested function counts in its own length and in
    its parent's). Declarations without a body (`fn f();` in a trait) are skipped.
  - Its length is the count of lines from the line of `fn` (the signature's first line with `fn`
    on it; attributes and doc comments above are not counted) to the line of the `}` that
    closes its body, both included, blank and comment lines inside counted.
  - Comments, strings and char literals are blanked first (with import-cycles.py's lexer), so
    their braces do not count; `fn` in a macro's body (`macro_rules!`) is measured as any other,
    a function a macro generates is not.
"""

import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def lexer():
    """import-cycles.py's `blank` (its file name is not an importable module's)."""
    spec = importlib.util.spec_from_file_location("import_cycles", os.path.join(HERE, "import-cycles.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.blank, module.matching_brace


blank, matching_brace = lexer()

FN_RE = re.compile(r"(?<![\w$])fn\s+(r#)?(\w+)")


def body_start(code, i):
    """The index of the `{` that opens the body of the function whose signature goes on from `i`,
    or None if the signature ends with `;` (no body). Parentheses and brackets are tracked, so the
    `;` of an array type (`[u8; 4]`) does not end it."""
    depth = 0
    for j in range(i, len(code)):
        c = code[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and c == "{":
            return j
        elif depth == 0 and c == ";":
            return None
    return None


def functions(text):
    """(line, name, length) of each function with a body in the Rust source `text`."""
    code, _ = blank(text)
    out = []
    for m in FN_RE.finditer(code):
        start = body_start(code, m.end())
        if start is None:
            continue
        end = matching_brace(code, start)
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, end - 1) + 1
        out.append((first, m.group(2), last - first + 1))
    return out


def main():
    args = sys.argv[1:]
    limit = 100
    known = []
    while "--limit" in args:
        i = args.index("--limit")
        limit = int(args[i + 1])
        del args[i : i + 2]
    while "--known" in args:
        i = args.index("--known")
        known.append(args[i + 1])
        del args[i : i + 2]
    src = args[0] if args else os.path.join(HERE, "..", "src")

    long = []  # (length, file relative to src, line, name)
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            rel = os.path.relpath(path, src)
            for line, fn, length in functions(text):
                if length > limit:
                    long.append((length, rel, line, fn))

    def is_known(rel):
        return any(rel.startswith(k) for k in known)

    long.sort(key=lambda x: (-x[0], x[1], x[2]))
    new = 0
    for length, rel, line, fn in long:
        mark = " (known)" if is_known(rel) else ""
        new += not mark
        print(f"{os.path.relpath(os.path.join(src, rel))}:{line} {fn} {length}{mark}")
    if long:
        print(f"{len(long)} function(s) over {limit} lines; {new} not inside a known folder "
              f"({', '.join(known) or 'none given'})", file=sys.stderr)
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
