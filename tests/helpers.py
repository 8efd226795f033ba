"""Helpers shared by several test modules."""

import os


def read_tree(path) -> dict[str, bytes]:
    """Every file below ``path`` as relative path -> bytes, to check that
    nothing in a directory changed."""
    result = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                result[os.path.relpath(full, path)] = f.read()
    return result
