#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The layout rules of ARCHITECTURE.md, checked on every run.

- Folders under src/ form layers; a file includes only its own folder or
  folders below it: core (src/) > backends > pcp, natpmp, upnp > platform > util.
  Folders on one level do not use each other.
- No file under src/backends, src/pcp, src/natpmp, src/upnp, src/platform or
  src/util includes internal.h (the core's own header): backends see the
  core through src/backends/backend.h only.
- Only src/platform/ holds OS-specific calls (routes from /proc, RECVERR,
  the error queue, getrandom, pipe2, linux/ headers).
- Every C file in src/ and tools/ is under 1,000 lines and opens (after its
  SPDX licence line) with a comment saying its job.
- Only src/util/alloc.c calls malloc, calloc, realloc, free, strdup and
  their kin: every other file of src/ allocates through util/alloc.h, so
  that every block goes through the application's allocator hook. The one
  exception (README.md, "Memory") is a block miniupnpc allocates itself,
  which goes back to it with the system free(): listed in SYSTEM_ALLOC.

Usage: check_layout.py SOURCE_DIR. Prints one line per violation; exit 1 if any.
"""
import os
import re
import sys

LEVEL = {"core": 0, "backends": 1, "pcp": 2, "natpmp": 2, "upnp": 2, "platform": 3, "util": 4}
OS_SPECIFIC = re.compile(
    r"#include <linux/|#include <sys/random\.h>|\bgetrandom\(|\bpipe2\(|IP_RECVERR|IPV6_RECVERR"
    r"|MSG_ERRQUEUE|\"/proc/")
MAX_LINES = 1000
ALLOC_CALL = re.compile(
    r"(?<![\w.>])(malloc|calloc|realloc|reallocarray|aligned_alloc|posix_memalign|valloc"
    r"|memalign|strdup|strndup|asprintf|vasprintf|free)\s*\(")
ALLOCATOR_FILE = "src/util/alloc.c"
# (file, what the line must hold): system allocations that are not ours to route
SYSTEM_ALLOC = {
    # miniupnpc (API < 19) returns a block of its own malloc()
    ("src/upnp/igd.c", "free(simpleUPnPcommand("),
}


def folder_of(rel):
    parts = rel.split("/")
    return "core" if len(parts) == 2 else parts[1]


def code_only(text):
    """The text with comments and string literals blanked (lines kept)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
                  blank, text, flags=re.S)


def main():
    root = sys.argv[1]
    problems = []
    files = []
    for top in ("src", "tools"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in names:
                if n.endswith((".c", ".h")):
                    files.append(os.path.relpath(os.path.join(dirpath, n), root))
    for rel in sorted(files):
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()
        lines = text.count("\n")
        if lines >= MAX_LINES:
            problems.append(f"{rel}: {lines} lines (the limit is {MAX_LINES})")
        body = text.split("\n", 1)[1] if text.startswith("/* SPDX-License-Identifier:") else text
        if not body.lstrip().startswith("/*"):
            problems.append(f"{rel}: does not open with a comment saying its job")
        if not rel.startswith("src/"):
            continue
        here = folder_of(rel)
        if here not in LEVEL:
            problems.append(f"{rel}: folder {here} has no layer in check_layout.py")
            continue
        for inc in re.findall(r'#include "([^"]+)"', text):
            there = inc.split("/")[0] if "/" in inc else "core"
            if inc == "internal.h" and here != "core":
                problems.append(f"{rel}: includes internal.h (use backends/backend.h)")
            elif there not in LEVEL:
                problems.append(f"{rel}: includes {inc} from an unknown folder")
            elif LEVEL[there] < LEVEL[here] or (LEVEL[there] == LEVEL[here] and there != here):
                problems.append(f"{rel}: {here} uses {there} ({inc}), which is not below it")
        if rel != ALLOCATOR_FILE:
            code = code_only(text)
            lines_of = text.split("\n")
            for m in ALLOC_CALL.finditer(code):
                line = code.count("\n", 0, m.start()) + 1
                if any(f == rel and what in lines_of[line - 1] for f, what in SYSTEM_ALLOC):
                    continue
                problems.append(f"{rel}:{line}: calls {m.group(1)}() directly "
                                f"(allocate through util/alloc.h)")
        if here != "platform":
            for m in OS_SPECIFIC.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{rel}:{line}: OS-specific '{m.group(0)}' outside src/platform/")
    for p in problems:
        print(p)
    print(f"check_layout: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
