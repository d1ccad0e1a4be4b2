"""Reading a training config: a preset, then a YAML file (`--config`), then flags, merged and typed
by cattrs at each step (config.py's converter), so that a mistake is one line naming the key and
where it was written; older schemas are migrated to today's on the way in."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import cattrs

from ..errors import PRPError
from ..rundir import CONFIG_FILE, read_run_config, read_yaml
from .config import PRESETS, SCHEMA_VERSION, TrainConfig, converter


def _message(e: Exception, _type) -> str:
    if isinstance(e, cattrs.errors.ForbiddenExtraKeysError):
        known = ", ".join(sorted(f.name for f in dataclasses.fields(e.cl))) if dataclasses.is_dataclass(e.cl) else ""
        return f"unknown key {', '.join(map(repr, sorted(e.extra_fields)))}" + (f" (known: {known})" if known else "")
    if isinstance(e, (TypeError, PRPError)):
        return str(e)
    return cattrs.v.format_exception(e, _type)


def _typed(d: dict, where: str) -> TrainConfig:
    """The config tree `d` as a TrainConfig; every problem in one line naming the key and `where`."""
    try:
        return converter.structure(d, TrainConfig)
    except cattrs.errors.BaseValidationError as e:
        lines = []
        for message in cattrs.transform_error(e, path="$", format_exception=_message):
            what, _, at = message.rpartition(" @ ")
            at = at.removeprefix("$").lstrip(".")
            lines.append(f"{at}: {what}" if at else what)
        raise PRPError(f"{where}: " + "; ".join(lines)) from None


def _validated(cfg: TrainConfig, where: str) -> TrainConfig:
    try:
        return cfg.validate()
    except PRPError as e:
        raise PRPError(f"{where}: {e}") from None


def _merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied, mapping by mapping (a value that is not a mapping replaces)."""
    out = dict(base)
    for k, v in overrides.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _migrate(d: dict, where: str) -> dict:
    """A config.yaml or YAML file of an older schema, in today's. A file without a
    schema_version that puts the preprocessing keys in `data` is read as schema 1 did."""
    version = d.pop("schema_version", None)
    if version in (1, None) and isinstance(d.get("data"), dict):
        data = d["data"]
        moved = {k: data.pop(k) for k in ("short_side", "frames", "crop", "mean", "std") if k in data}
        if moved:
            data["preprocess"] = {**moved, **data.get("preprocess", {})}
    elif version not in (None, SCHEMA_VERSION):
        raise PRPError(f"{where}: schema_version {version} is not supported (expected {SCHEMA_VERSION})")
    for informational in ("config_hash", "versions"):  # a run's config.yaml carries these beside the config
        d.pop(informational, None)
    return d


def build_config(preset: str | None, config_file: Path | None, overrides: dict) -> TrainConfig:
    """preset → YAML file → flag overrides, typed and validated at each step."""
    file_dict = _migrate(read_yaml(config_file), str(config_file)) if config_file is not None else {}
    has_data = overrides.get("data", {}).get("data") or (isinstance(file_dict.get("data"), dict) and file_dict["data"].get("data"))
    preset = preset or file_dict.get("preset") or ("paper" if has_data else "tiny")
    file_dict.pop("preset", None)
    if preset not in PRESETS:
        raise PRPError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    base = converter.unstructure(PRESETS[preset]())
    where = str(config_file or "config")
    _validated(_typed(_merged(base, file_dict), where), where)  # a file's mistakes are named as the file's
    where = f"{where} + flags" if config_file else "flags"
    cfg = _typed(_merged(_merged(base, file_dict), overrides), where)
    return _validated(replace(cfg, preset=preset), where)


def load_run_config(run_dir: Path) -> TrainConfig:
    """The config a run was made with (its config.yaml)."""
    where = str(Path(run_dir) / CONFIG_FILE)
    return _validated(_typed(_migrate(read_run_config(run_dir), where), where), where)
