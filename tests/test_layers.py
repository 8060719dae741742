"""The package's import structure: data flows one way, tokenizer -> data/model -> train/peft -> inference -> metrics
-> commands, and nothing imports back up or in a loop (imports inside functions count too)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "midi_rwkv"

# Lower numbers are lower layers; a module may import its own layer's other packages only where no loop results.
LAYERS = {
    "errors": 0, "io": 0, "settings": 0,
    "tokenizer": 1,
    "data": 2, "model": 2, "structure": 2,
    "train": 3, "peft": 3,
    "inference": 4,
    "metrics": 5, "live": 5,
    "studio": 6,
    "commands": 7, "cli": 7, "__main__": 7, "__init__": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every midi_rwkv module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("midi_rwkv")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("midi_rwkv"):
            submodules = {f"{node.module}.{a.name}" for a in node.names} & modules  # `from pkg import module`
            found |= submodules
            if len(submodules) < len(node.names):  # names defined by the module itself (or its __init__)
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports_of(path, set(modules)) if m in modules and m != name}
        for name, path in modules.items()
    }


def backward_edges(edges: dict[str, set[str]]) -> list[str]:
    return [f"{a} -> {b}" for a, targets in edges.items() for b in targets if LAYERS[stage(b)] > LAYERS[stage(a)]]


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import loop (as a path), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def stage_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        out.setdefault(stage(a), set()).update(stage(b) for b in targets if stage(b) != stage(a))
    return out


def test_every_stage_has_a_layer():
    assert {stage(m) for m in graph()} <= set(LAYERS)


def test_no_import_runs_against_the_flow():
    assert backward_edges(graph()) == []


def test_no_import_loops_between_modules_or_stages():
    edges = graph()
    assert cycle(edges) is None
    assert cycle(stage_graph(edges)) is None


def test_no_stage_holds_command_line_code():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if LAYERS[stage(name)] < LAYERS["commands"]:
            assert "argparse" not in path.read_text(), name


@pytest.mark.parametrize(
    "edges, expected",
    [
        (
            {"midi_rwkv.tokenizer.a": {"midi_rwkv.metrics.b"}, "midi_rwkv.metrics.b": set()},
            ["midi_rwkv.tokenizer.a -> midi_rwkv.metrics.b"],
        ),
        ({"midi_rwkv.metrics.b": {"midi_rwkv.tokenizer.a"}, "midi_rwkv.tokenizer.a": set()}, []),
    ],
    ids=["backward", "forward"],
)
def test_the_checks_see_what_they_look_for(edges, expected):
    assert backward_edges(edges) == expected
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
