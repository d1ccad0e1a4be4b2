"""What `train --resume` accepts: the command that made the run (the up-arrow habit), and
changes only to what does not change the result so far (where it runs, more epochs). A value
that differs from the run's is refused in one line naming it, the run's value and the given one."""

from __future__ import annotations

from pathlib import Path

from ..errors import PRPError
from .config import TrainConfig
from .config_files import build_config

# What --resume may change: what does not change the result so far (where it runs, and more epochs).
RESUMABLE = {("device",), ("data", "workers"), ("pretrain", "epochs"), ("finetune", "epochs")}


def _leaves(d: dict, path=()):
    for k, v in d.items():
        yield from (_leaves(v, (*path, k)) if isinstance(v, dict) else [((*path, k), v)])


def refuse_changes(cfg: TrainConfig, out: Path, overrides: dict, config_file: Path | None, preset: str | None,
                   init: Path | None) -> None:
    """Compare what the command asks with the run's config.yaml. With --preset or --config the
    whole config they make is compared (a value the command leaves out takes the preset's or
    the file's, as when the run was made); without, only the flags given."""
    run = dict(_leaves(cfg.to_dict()))
    if preset is not None or config_file is not None:
        asked = dict(_leaves(build_config(preset or cfg.preset, config_file, overrides).to_dict()))
    else:
        asked = {path: (list(v) if isinstance(v, tuple) else v) for path, v in _leaves(overrides)}
    for path, value in asked.items():
        if path in RESUMABLE or path == ("schema_version",) or path not in run:
            continue
        if value != run[path]:
            name = ".".join(path)
            raise PRPError(f"--resume continues {out} as configured: {name} is {run[path]} there, the command gives {value}; "
                           f"drop --{path[-1].replace('_', '-')} (or fix --config), or start a new run with --out")
    if init is None:
        return
    if (Path(out) / "pretrain").is_dir():
        raise PRPError(f"--resume continues {out} as configured: it pretrained its own encoder, the command gives --init {init}; "
                       "drop --init, or start a new run with --out")
    recorded = _recorded_init(Path(out))
    if recorded is not None and Path(init).resolve() != Path(recorded).resolve():
        raise PRPError(f"--resume continues {out} as configured: it was finetuned from {recorded}, the command gives "
                       f"--init {init}; drop --init, or start a new run with --out")


def _recorded_init(run_dir: Path) -> str | None:
    """The --init a run's finetuning started from, as its checkpoints record it."""
    from ..rundir import load_checkpoint

    for name in ("best.pt", "last.pt"):
        ckpt = run_dir / "finetune" / name
        if ckpt.exists():
            return load_checkpoint(ckpt).get("init")
    return None


__all__ = ["RESUMABLE", "refuse_changes"]
