"""The code blocks of Markdown pages, for the tests that run them as written.

A block preceded by the line ``<!-- fragment -->`` (blank lines between are
allowed) is a deliberate fragment: it leaves out what the page explains
elsewhere (a pipeline ``p``, the ``chunks`` PCollection, a bucket), so it is
only compiled. Every other block is complete and runs as written.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import re

FRAGMENT = "<!-- fragment -->"
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    language: str
    code: str
    line: int  # 1-based line of the opening fence
    fragment: bool

    def compiled(self, filename: str):
        """The block compiled so that tracebacks show the page's line numbers."""
        return compile("\n" * self.line + self.code, filename, "exec")


def code_blocks(markdown: str, language: str) -> list[Block]:
    """The fenced blocks of one language (```python, ```bash), in page order."""
    blocks = []
    lines = markdown.splitlines()
    previous = ""  # the last non-blank line outside a block
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        start = index
        index += 1
        body = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        if match.group(1) == language:
            code = "\n".join(body) + "\n"
            blocks.append(Block(language, code, start + 1, previous == FRAGMENT))
        previous = ""
        index += 1
    return blocks


def section(markdown: str, heading: str) -> str:
    """The text of a section (``## Title``) up to the next heading of its level
    or above; KeyError if the page has no such heading."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = markdown.splitlines()
    if heading not in lines:
        raise KeyError(f"no heading {heading!r}")
    start = lines.index(heading) + 1
    end = start
    while end < len(lines):
        hashes = len(lines[end]) - len(lines[end].lstrip("#"))
        if 0 < hashes <= level and lines[end][hashes : hashes + 1] == " ":
            break
        end += 1
    return "\n".join(lines[start:end]) + "\n"


def command_lines(block: Block) -> list[str]:
    """The commands of a shell block: its lines, without blanks and comments."""
    return [
        line.strip()
        for line in block.code.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def unbound_names(code: str) -> set[str]:
    """Names a snippet reads but never binds (imports, assignments, function
    arguments), builtins aside: what it needs from an earlier snippet."""
    tree = ast.parse(code)
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return read - bound - set(dir(builtins))
