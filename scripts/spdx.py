#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check (default) or add (--fix) the SPDX licence line at the top of every
source, build and script file git tracks. Usage: spdx.py [--fix] [ROOT]."""
import os
import subprocess
import sys

TAG = "SPDX-License-Identifier: MIT"
C_LIKE = (".c", ".h", ".cpp")
HASH = (".sh", ".py", ".txt", ".cmake", ".in", ".run", ".pc.in")
ROFF = (".1", ".3")
SKIP = ("changelog.Debian.in", "triggers")


def style(path):
    name = os.path.basename(path)
    if name in SKIP or "/corpus/" in path:
        return None
    if name == "run" and path.startswith(".ci/"):
        return "#"
    if path.endswith(C_LIKE):
        return "c"
    if path.endswith(ROFF):
        return "roff"
    if path.endswith(HASH) or name == "CMakeLists.txt":
        return "#"
    return None


def line_for(kind):
    return {"c": "/* " + TAG + " */\n", "#": "# " + TAG + "\n", "roff": '.\\" ' + TAG + "\n"}[kind]


def main():
    fix = "--fix" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--fix"]
    root = args[0] if args else "."
    files = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    missing = []
    for rel in files:
        kind = style(rel)
        if kind is None:
            continue
        path = os.path.join(root, rel)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        head = text.split("\n", 3)[:3]
        if any(TAG in h for h in head):
            continue
        missing.append(rel)
        if fix:
            add = line_for(kind)
            if text.startswith("#!"):
                first, rest = text.split("\n", 1)
                text = first + "\n" + add + rest
            else:
                text = add + text
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    for rel in missing:
        print(("added to " if fix else "no SPDX line: ") + rel)
    print(f"spdx: {len(missing)} file(s) {'fixed' if fix else 'without the line'}")
    return 0 if fix or not missing else 1


if __name__ == "__main__":
    sys.exit(main())
