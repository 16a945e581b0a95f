"""The package's layers: no module imports from a layer above its own."""

import ast
from pathlib import Path

import fdagmm

PACKAGE = Path(fdagmm.__file__).parent
# Bottom to top. A module may import from its own layer and the layers below it.
LAYERS = [
    ("fdagmm.errors", "fdagmm.ranges", "fdagmm.seeding", "fdagmm.serialization", "fdagmm.cli", "fdagmm.tracking"),
    ("fdagmm.data",),
    ("fdagmm.models",),
    ("fdagmm.detection",),
    ("fdagmm.config",),
    ("fdagmm.federation",),  # client, strategies, rounds, in-process loop, checkpoint, components
    ("fdagmm.federation.flower",),  # the Flower adapters: the same federation objects over Flower
    ("fdagmm.run", "fdagmm.analysis"),  # one run; the analysis of sweeps
    ("fdagmm.api", "fdagmm.commands"),  # the Python API and the fdagmm command: on top of everything
]


def _layer(module: str) -> int:
    matches = [(len(prefix), i) for i, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]  # fmt: skip
    assert matches, f"{module} belongs to no layer: add it to LAYERS"
    return max(matches)[1]  # the most specific prefix decides


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fdagmm"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fdagmm"))
    return found


def test_no_module_imports_from_a_layer_above():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("fdagmm", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        if module == "fdagmm":
            continue
        for imported in _imports(path):
            if _layer(imported) > _layer(module):
                violations.append(f"{module} -> {imported}")
    assert violations == []


# The one module that knows KDDCUP99 (its files and fetcher); everything else takes the data set
# (and its schema, schemas/kdd99.yaml) from the config.
KDD99_MODULE = PACKAGE / "data" / "kdd99.py"


def test_nothing_but_the_kdd99_module_names_kddcup99():
    naming = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == KDD99_MODULE:
            continue
        tree = ast.parse(path.read_text())
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)] + [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
        if "kdd99" in strings or any(name in ("KDD99", "PUBLISHED_FILES") for name in names):
            naming.append(str(path.relative_to(PACKAGE)))
    assert naming == []
