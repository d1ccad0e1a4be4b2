"""The house rules (DESIGN.md, the brief): a module ≤ 300 lines, a function ≤ 60, and no import
circle inside prp_deploy. A known offender may be listed, with its size, while it waits for its
split; the lists may only shrink: a new offender fails, and so does a listed one that grew or was
mended but not struck off. Both lists are empty since issue 44: keep them so."""

import ast

from tests.conftest import REPO

PACKAGE = REPO / "prp_deploy"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60

# path → lines; strike a line off when its module is split.
KNOWN_LONG_MODULES: dict[str, int] = {}
# "path:function" → lines (the def line to the last, docstring included).
KNOWN_LONG_FUNCTIONS: dict[str, int] = {}


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _name(path) -> str:
    return path.relative_to(REPO).as_posix()


def long_modules() -> dict[str, int]:
    sizes = {_name(p): len(p.read_text().splitlines()) for p in _modules()}
    return {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}


def long_functions() -> dict[str, int]:
    found = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found[f"{_name(path)}:{node.name}"] = lines
    return found


def _judge(found: dict[str, int], known: dict[str, int], limit: int) -> list[str]:
    problems = [f"{k}: {n} lines (limit {limit}): split it" for k, n in found.items() if k not in known]
    problems += [f"{k}: grew from {known[k]} to {n} lines: split it rather than grow it" for k, n in found.items() if k in known and n > known[k]]
    problems += [f"{k}: now within {limit} lines: strike it off the known list" for k in known if k not in found]
    return problems


def test_modules_and_functions_stay_within_their_sizes():
    problems = _judge(long_modules(), KNOWN_LONG_MODULES, MAX_MODULE_LINES)
    problems += _judge(long_functions(), KNOWN_LONG_FUNCTIONS, MAX_FUNCTION_LINES)
    assert not problems, "\n".join(problems)


def _module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module → the prp_deploy modules it imports, anywhere in it (a function's import too: it ties them all the same)."""
    known = {_module_name(p): p for p in _modules()}
    graph = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package if node.level else ""
                module = ".".join(x for x in (base, node.module) if x)
                targets.add(module)
                targets.update(f"{module}.{a.name}" for a in node.names)  # `from . import x` names a module
        graph[name] = {t for t in targets if t in known and t != name and not name.startswith(t + ".")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_inside_the_package():
    graph = import_graph()
    assert "prp_deploy.export.metadata" in graph["prp_deploy.export.reference"]  # the graph sees relative imports
    assert not circles(graph), circles(graph)


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
