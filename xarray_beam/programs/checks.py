"""What the command checks before it prints a plan or runs anything.

The input must be a Zarr store; names given in flags (dimensions, variables,
groupings, statistics) must exist, and a near miss gets a suggestion; the
output must be writable as the flags say (a new location, ``--mode w`` to
replace a store, ``--resume`` to continue one). Messages use the command's
words: its flags, not the Python API's arguments.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xarray_beam.io import locations, stores


def suggestion(name: str, choices: Iterable[str]) -> str | None:
    """The choice ``name`` most likely meant, or None: one that differs only
    in case, the only one it begins, or the closest by ``difflib``.

    Example:
      >>> suggestion('lat', ['time', 'latitude', 'longitude'])
      'latitude'
      >>> suggestion('tmie', ['time', 'latitude']), suggestion('x', ['time'])
      ('time', None)
    """
    choices = list(choices)
    for choice in choices:
        if choice.lower() == name.lower():
            return choice
    starting = [c for c in choices if name and c.lower().startswith(name.lower())]
    if len(starting) == 1:
        return starting[0]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def check_names(
    given: Iterable[str], known: Sequence[str], kind: str, flag: str
) -> None:
    """Refuse names that are not among ``known``, suggesting the likely one.

    Args:
      given: the names a flag gave.
      known: the names that exist.
      kind: what a name is, e.g. 'dimension'.
      flag: the flag, e.g. '--target-chunks'.

    Raises:
      ValueError: naming the flag, each unknown name and its suggestion, and
        the names that exist.

    Example:
      >>> check_names(['tim'], ['time', 'latitude'], 'dimension', '--target-chunks')
      Traceback (most recent call last):
      ...
      ValueError: --target-chunks: unknown dimension 'tim' (did you mean 'time'?); ...
    """
    unknown = [name for name in given if name not in known]
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = suggestion(name, known)
        parts.append(f"{name!r} (did you mean {close!r}?)" if close else repr(name))
    plural = "s" if len(unknown) > 1 else ""
    raise ValueError(
        f"{flag}: unknown {kind}{plural} {', '.join(parts)}; the {kind}s are "
        f"{', '.join(known) or 'none'}"
    )


def check_choice(text: str, choices: Sequence[str], what: str = "choice") -> str:
    """``text`` if it is one of ``choices``; else a ValueError suggesting the
    likely choice.

    Example:
      >>> check_choice('meen', ('mean', 'max'), 'statistic')
      Traceback (most recent call last):
      ...
      ValueError: unknown statistic 'meen' (did you mean 'mean'?); choose from mean, max
    """
    if text in choices:
        return text
    close = suggestion(text, choices)
    hint = f" (did you mean {close!r}?)" if close else ""
    raise ValueError(f"unknown {what} {text!r}{hint}; choose from {', '.join(choices)}")


def check_source(
    store: str, storage_options: Mapping[str, Any] | None = None
) -> str | Any:
    """The store to read, if a Zarr store is there.

    Raises:
      FileNotFoundError: "no such store: PATH" if nothing is there.
      ValueError: "not a Zarr store: PATH" if something else is.

    Example:
      >>> import tempfile
      >>> check_source(tempfile.mkdtemp())
      Traceback (most recent call last):
      ...
      ValueError: not a Zarr store: ... (an empty directory)
    """
    location = stores.normalize_store(store)
    state = stores.store_state(location, storage_options)
    if state == "missing":
        raise FileNotFoundError(f"no such store: {store}")
    if state == "empty":
        raise ValueError(f"not a Zarr store: {store} (an empty directory)")
    if state == "other":
        raise ValueError(
            f"not a Zarr store: {store} (there is no zarr.json, .zgroup or "
            f".zarray at its root)"
        )
    return location


def check_output(
    source: str,
    target: str,
    *,
    mode: str | None,
    resume: bool,
    storage_options: Mapping[str, Any] | None = None,
    temp_store: str | None = None,
) -> None:
    """Refuse an output the command may not write, in the command's words.

    The output may not be (or be inside, or hold) the input; without flags it
    must not exist yet; ``--mode w`` replaces a Zarr store (never other
    data); ``--mode r+`` writes into an existing Zarr store; ``--resume``
    continues one, or starts afresh if there is none.

    Raises:
      ValueError: for contradicting flags, or an output that is the input.
      FileExistsError: for an output that exists.
      FileNotFoundError: for ``--mode r+`` without a store.

    Example:
      ``check_output('era5.zarr', 'pencils.zarr', mode=None, resume=False)``
    """
    if resume and mode == "w":
        raise ValueError(
            "--resume continues writing the existing output, and --mode w would "
            "delete it first: give one of them"
        )
    location = stores.normalize_store(target)
    read = stores.normalize_store(source)
    sources = {"input": read}
    if temp_store is not None:
        sources["--temp-store"] = stores.normalize_store(temp_store)
    locations.check_apart(location, sources, "the command")
    state = stores.store_state(location, storage_options)
    if mode == "r+" and state != "zarr":
        raise FileNotFoundError(
            f"--mode r+ writes into an existing Zarr store, but there is none at "
            f"{target}; leave --mode out to create it"
        )
    if state == "other":
        raise FileExistsError(
            f"{target} already exists and is not a Zarr store; the command will "
            f"neither write into it nor replace it: choose another output location"
        )
    if state == "zarr" and mode in (None, "w-") and not resume:
        raise FileExistsError(
            f"the output {target} already exists: pass --mode w to replace it, or "
            f"--resume to finish an interrupted run of the same command"
        )
