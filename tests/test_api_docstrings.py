"""Every parameter of the public API is documented where it is accepted.

For each name in ``xarray_beam.__all__`` (and for classes, their constructor,
their public methods and the classes they hold, such as ``Mean.Globally``), a
parameter counts as documented when its docstring lists it in an ``Args:``
(or, for dataclasses, ``Attributes:``) section, alone or in a group such as
``min_mem, max_mem: ...``, or names it in double backquotes (```name```) in
its text. ``**kwargs`` must be listed as such. What a class inherits from a
base outside the package (Beam's ``PTransform.__init__(label)``, the
``CombineFn`` methods) is documented by that base.
"""

import inspect
import re

import pytest

import xarray_beam

SECTION = re.compile(r"^(Args|Attributes):\s*$")
ENTRY = re.compile(r"^(\**\w+(?:\s*,\s*\**\w+)*)\s*(?:\(.*?\))?:(?:\s|$)")


def listed_names(doc: str) -> set[str]:
    """The names an ``Args:`` or ``Attributes:`` section lists, stars kept."""
    names: set[str] = set()
    lines = inspect.cleandoc(doc).splitlines()
    inside, indent = False, None
    for line in lines:
        text = line.strip()
        depth = len(line) - len(line.lstrip())
        if SECTION.match(text):
            inside, indent = True, None
            continue
        if not inside or not text:
            continue
        if indent is None:
            indent = depth
        if depth < indent:
            inside = False
        elif depth == indent:
            match = ENTRY.match(text)
            if match:
                names.update(n.strip() for n in match.group(1).split(","))
    return names


def undocumented(function, doc: str | None) -> list[str]:
    """The parameters of ``function`` that ``doc`` does not document."""
    doc = doc or ""
    listed = listed_names(doc)
    missing = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in ("self", "cls"):
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            documented = f"**{parameter.name}" in listed
        elif parameter.kind is parameter.VAR_POSITIONAL:
            documented = f"*{parameter.name}" in listed
        else:
            documented = parameter.name in listed or f"``{parameter.name}``" in doc
        if not documented:
            missing.append(parameter.name)
    return missing


def _ours(obj) -> bool:
    return getattr(obj, "__module__", "").startswith("xarray_beam")


def _inherited_from_elsewhere(cls: type, name: str) -> bool:
    """Whether ``cls.name`` overrides (or is) a member of a foreign base."""
    return any(name in vars(base) for base in cls.__mro__[1:] if not _ours(base))


def _class_cases(qualname: str, cls: type) -> list[tuple[str, object, str]]:
    cases = []
    init_owner = next(base for base in cls.__mro__ if "__init__" in vars(base))
    if _ours(init_owner):
        doc = (cls.__doc__ or "") + "\n" + (vars(init_owner)["__init__"].__doc__ or "")
        cases.append((qualname, cls, doc))
    for name, member in vars(cls).items():
        if name.startswith("_") or _inherited_from_elsewhere(cls, name):
            continue
        if isinstance(member, classmethod | staticmethod):
            member = member.__func__
        if inspect.isfunction(member):
            cases.append((f"{qualname}.{name}", member, member.__doc__))
        elif inspect.isclass(member) and _ours(member):
            cases += _class_cases(f"{qualname}.{name}", member)
    return cases


def _cases() -> list[tuple[str, object, str]]:
    cases = []
    for name in xarray_beam.__all__:
        obj = getattr(xarray_beam, name)
        if inspect.isclass(obj):
            cases += _class_cases(name, obj)
        elif callable(obj):
            cases.append((name, obj, obj.__doc__))
    return cases


CASES = _cases()


def test_the_walk_covers_constructors_methods_and_nested_classes():
    names = {name for name, _, _ in CASES}
    expected = {
        "rechunk_zarr",
        "RechunkZarr",
        "Mean",
        "Mean.Globally",
        "Std.PerKey",
        "Dataset.to_zarr",
        "Dataset.from_zarr",
        "Climatology.zarr_chunks",
    }
    assert expected <= names
    assert "ConsolidateVariables" not in names  # Beam's __init__(label)


@pytest.mark.parametrize(
    "doc, names",
    [
        (
            "S.\n\n    Args:\n      a: x\n      b, c (int): y\n        d: no",
            {"a", "b", "c"},
        ),
        (
            "S.\n\n    Args:\n      **kwargs: x\n\n    Returns:\n      e: no",
            {"**kwargs"},
        ),
        ("S.\n\n    Attributes:\n      plans: x", {"plans"}),
        ("S.\n\n    Example:\n      a: no", set()),
    ],
)
def test_listed_names_reads_google_style_sections(doc, names):
    assert listed_names(doc) == names


def test_an_undocumented_parameter_is_found():
    def f(a, b, *args, c=1, **kwargs):
        """S.

        Args:
          a: x
          *args: y

        Uses ``c``.
        """

    assert undocumented(f, f.__doc__) == ["b", "kwargs"]


@pytest.mark.parametrize(
    "qualname, function, doc", CASES, ids=[name for name, _, _ in CASES]
)
def test_every_parameter_is_documented(qualname, function, doc):
    assert undocumented(function, doc) == [], qualname


@pytest.mark.parametrize(
    "function",
    [
        xarray_beam.plan_rechunk,
        xarray_beam.Rechunk,
        xarray_beam.RechunkZarr,
        xarray_beam.rechunk_zarr,
        xarray_beam.plan_store_rechunk,
        xarray_beam.Mean,
        xarray_beam.Mean.Globally,
        xarray_beam.Climatology,
        xarray_beam.CombineThroughStorage,
        xarray_beam.Dataset.rechunk,
    ],
)
def test_byte_size_defaults_read_as_sizes(function):
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in ("max_mem", "min_mem"):
            assert parameter.default is None or isinstance(parameter.default, str)
            assert "bytes" in inspect.getdoc(function) or "size" in inspect.getdoc(
                function
            )


def test_rechunk_zarr_takes_every_option_of_rechunk_zarr_explicitly():
    transform = inspect.signature(xarray_beam.RechunkZarr).parameters
    function = inspect.signature(xarray_beam.rechunk_zarr).parameters
    assert set(transform) <= set(function)
    for name, parameter in transform.items():
        assert function[name].default == parameter.default, name
    assert not any(p.kind is p.VAR_KEYWORD for p in function.values())
