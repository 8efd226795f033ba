"""The package's layers hold: each imports only the ones below it, and no
module reaches into another's private names.

Layers, lowest first (see docs/architecture.md):

    model/     no Beam, no I/O: keys, chunk arithmetic, planning, templates
    io/        storage, no Beam; io/_direct is private to io
    beam/      Beam transforms
    dataset.py, dataset_steps.py, synthetic.py: the high-level API
    programs/  what users run
    __init__   re-exports only
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "xarray_beam"
LAYERS = {
    "model": 0,
    "io": 1,
    "beam": 2,
    "dataset": 3,
    "dataset_steps": 3,
    "synthetic": 3,
    "programs": 4,
    "__init__": 5,
    "__main__": 5,
}
# Libraries that mean Beam or I/O, which the lower layers must not import.
BEAM = {"apache_beam"}
STORAGE = {"zarr", "fsspec", "gcsfs", "s3fs", "os", "pathlib", "shutil", "mmap"}


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def _is_module(name: str) -> bool:
    return name in MODULES


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(module imported, name imported from it or None, line)`` for every
    import in ``module``, with ``from package import submodule`` resolved to
    the submodule."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                if _is_module(child):
                    found.append((child, None, node.lineno))
                else:
                    found.append((node.module, alias.name, node.lineno))
    return found


def _own_package(module: str) -> str:
    path = MODULES[module]
    parts = module.split(".")
    return module if path.name == "__init__.py" else ".".join(parts[:-1])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    if _layer(module) == LAYERS["__init__"]:
        return
    higher = [
        f"line {line}: {target}"
        for target, _, line in _imports(module)
        if target.startswith("xarray_beam") and _layer(target) > _layer(module)
    ]
    assert higher == [], f"{module} imports higher layers"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if _layer(m) <= LAYERS["io"])
)
def test_model_and_io_do_not_import_beam_and_model_does_no_io(module):
    banned = BEAM | (STORAGE if _layer(module) == LAYERS["model"] else set())
    found = [
        f"line {line}: {target}"
        for target, _, line in _imports(module)
        if target.split(".")[0] in banned
    ]
    assert found == []


def _private_direct_use_allowed(module: str, target: str) -> bool:
    """io's modules use the private direct path through its package (the
    facade); its own modules use each other."""
    if target == "xarray_beam.io._direct":
        return module.startswith("xarray_beam.io.")
    return target.startswith("xarray_beam.io._direct.") and module.startswith(
        "xarray_beam.io._direct"
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_another_modules_private_names(module):
    found = []
    for target, name, line in _imports(module):
        if not target.startswith("xarray_beam"):
            continue
        private_module = any(p.startswith("_") for p in target.split(".")[1:])
        if (
            private_module
            and target != module
            and not _private_direct_use_allowed(module, target)
        ):
            found.append(f"line {line}: {target}")
        if name and name.startswith("_") and target != _own_package(module):
            found.append(f"line {line}: {target}.{name}")
    assert found == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_reads_private_attributes_of_another_module(module):
    tree = ast.parse(MODULES[module].read_text())
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                if _is_module(child) and child != module:
                    aliases[alias.asname or alias.name] = child
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("xarray_beam") and alias.asname:
                    aliases[alias.asname] = alias.name
    found = [
        f"line {node.lineno}: {aliases[node.value.id]}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]
    assert found == []


def test_init_only_re_exports():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    ]
    assert defined == []


def test_every_module_is_in_a_known_layer():
    unknown = [m for m in MODULES if m.count(".") and m.split(".")[1] not in LAYERS]
    assert unknown == []
