"""The export folder's and the runtime's files as contracts: JSON Schema (draft 2020-12) for
model.json, parity.json, eval.json, summary.json, sources.jsonl rows, window and segment
records, and the features' row index (F.jsonl beside F.npy). C++ apps, Triton clients and users' scripts read these files; the schemas say what
they may rely on. Each document carries `schema_version`; a reader refuses a major version
newer than it knows, in one line.

Validation uses `jsonschema` where it is installed (the train and dev extras bring it); the
bare runtime (numpy, OpenCV, ONNX Runtime) still checks the version and parses model.json
with its own typed reader.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from ..errors import PRPError

NAMES = ("model", "parity", "eval", "summary", "source_row", "window", "segment", "feature_row")
# The major schema_version this package writes and reads, per document that carries one.
VERSIONS = {"model": 1, "parity": 1, "eval": 1, "summary": 1}


@lru_cache(maxsize=None)
def schema(name: str) -> dict:
    if name not in NAMES:
        raise ValueError(f"no contract {name!r}; expected one of {', '.join(NAMES)}")
    return json.loads(resources.files(__package__).joinpath(f"{name}.schema.json").read_text())


def check_version(doc: dict, name: str, where: str) -> None:
    """A document of a newer major version than this package knows is refused, saying what to do."""
    if name not in VERSIONS or not isinstance(doc, dict):
        return
    version = doc.get("schema_version")
    if not isinstance(version, int):
        raise PRPError(f"{where}: schema_version is missing or not an integer ({version!r})")
    if version > VERSIONS[name]:
        raise PRPError(f"{where}: written with schema_version {version}, newer than this prp-deploy reads ({VERSIONS[name]}); "
                       "upgrade prp-deploy (pip install -U prp-deploy)")
    if version < 1:
        raise PRPError(f"{where}: schema_version {version} is not a version")


def validate(doc, name: str, where: str) -> None:
    """`doc` against the contract `name`: one PRPError line naming the field that breaks it.
    Without jsonschema installed only the version is checked."""
    check_version(doc, name, where)
    try:
        import jsonschema
        from referencing import Registry, Resource
    except ImportError:
        return
    registry = Registry().with_resources([(schema(n)["$id"], Resource.from_contents(schema(n))) for n in NAMES])
    validator = jsonschema.Draft202012Validator(schema(name), registry=registry)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        path = [str(p) for p in error.absolute_path]
        message = error.message
        missing = re.match(r"'(.+)' is a required property", message) if error.validator == "required" else None
        if missing:  # name the field that is missing, not its parent
            path, message = [*path, missing.group(1)], "missing (the contract requires it)"
        raise PRPError(f"{where}: {'.'.join(path) or '(the document)'}: {message}")


__all__ = ["NAMES", "VERSIONS", "check_version", "schema", "validate"]
