"""The package's architecture, read from its source with `ast`: dependencies point one way (report
and cli on top, then scale, then store, then the core, then nn, importing only numpy and the
package's error family, `errors`, which imports nothing of the package),
there are no import cycles, no module uses another's private names, and no module is past 400
lines. `python tests/test_layout.py` prints the import graph from the top down."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "assignment3"

#: The layers, bottom up; a module may import only from its own layer or the ones below.
LAYERS = {"errors": -1, "nn": 0, "core": 1, "store": 2, "scale": 3, "report": 4, "top": 5}
CORE = {"data", "config", "training", "env", "signals"}
TOP = {"cli", "__main__", "__init__"}
MAX_LINES = 400
#: What nn/ may import besides itself: numpy and the standard library's typing helpers.
NN_MAY_IMPORT = {"numpy", "typing", "typing_extensions", "collections", "functools", "numbers",
                 "dataclasses"}


def module_name(path: Path) -> str:
    """assignment3/nn/network.py -> "nn.network"; assignment3/cli.py -> "cli"."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts)


def layer(module: str) -> int:
    head = module.split(".")[0]
    if head in LAYERS and head not in ("core", "top"):
        return LAYERS[head]
    return LAYERS["top"] if head in TOP else LAYERS["core"]


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import of the package's modules in `path`, wherever it is in the
    file (a lazy import in a function counts too)."""
    here = module_name(path).split(".")
    package = here[:-1] if path.name != "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:          # `from . import env` imports a module
                sub = f"{target}.{alias.name}" if target else alias.name
                if (PACKAGE / sub.replace(".", "/")).with_suffix(".py").exists() or \
                        (PACKAGE / sub.replace(".", "/")).is_dir():
                    found.append((sub, []))
                elif target:
                    found.append((target, [alias.name]))
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names]
            for name in names:
                if name and name.startswith("assignment3."):
                    found.append((name.removeprefix("assignment3."), []))
    return found


def graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (a subpackage counts as its __init__)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, _ in imports(path):
            target = target if target in modules else f"{target}.__init__"
            if target in modules and target != module:
                edges[module].add(target)
    return edges


def test_no_module_is_past_400_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules past {MAX_LINES} lines: {long}"


def test_dependencies_point_down():
    upward = [f"{m} -> {t}" for m, targets in graph().items() for t in targets
              if layer(t) > layer(m) and not m.endswith("__init__")]
    assert not upward, f"imports from a higher layer: {upward}"


def test_nn_imports_only_nn_numpy_and_the_errors():
    for path in (PACKAGE / "nn").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 or (node.level, node.module) == (2, "errors"), \
                    f"{path.name} imports from outside nn/: {node.module}"
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else \
                    [alias.name for alias in node.names]
                outside = [n for n in names if n and n.split(".")[0] not in NN_MAY_IMPORT]
                assert not outside, f"{path.name} imports {outside}"


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in edges[m]:
            if state.get(t) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, m, t])}")
            if t not in state:
                visit(t, [*path, m])
        state[m] = 2

    for m in edges:
        if m not in state and not m.endswith("__init__"):
            visit(m, [])


def test_no_module_uses_another_modules_private_names():
    used = [f"{module_name(p)} uses {target}.{name}" for p in PACKAGE.rglob("*.py")
            for target, names in imports(p) for name in names if name.startswith("_")]
    assert not used, used


def test_layout_check_sees_imports():
    """The checks above would pass vacuously if `imports` found nothing: it must see the
    training loop's imports of the core and of nn."""
    targets = {t for t, _ in imports(PACKAGE / "training" / "loop.py")}
    assert {"config", "training.harness", "nn.optim", "nn.cost"} <= targets


if __name__ == "__main__":
    edges = graph()
    for m in sorted(edges, key=lambda m: (-layer(m), m)):
        print(f"{m:24s} -> {', '.join(sorted(edges[m])) or '(nothing of the package)'}")
