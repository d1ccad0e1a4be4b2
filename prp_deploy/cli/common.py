"""What every command module shares: how a command speaks (stderr, so stdout stays its result) and
the check on a file it is asked to write."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError


def say(msg: str) -> None:
    click.echo(msg, err=True)


def check_new_file(path, flag: str, suffixes: tuple[str, ...], inputs: list) -> None:
    """An output file of `explain`, `search` or `eval`: a file name with one of `suffixes`, never a folder
    and never one of the command's inputs (nothing the user gave is written over)."""
    if path is None:
        return
    text = str(path)
    if text.endswith(("/", "\\")) or Path(path).is_dir():
        raise UsageError(f"{flag} {text}: names a folder; give a file ({' or '.join(suffixes)})")
    if Path(path).suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {text}: give a {' or '.join(suffixes)} file")
    for other in inputs:
        if other is not None and Path(other).exists() and Path(path).exists() and Path(path).resolve() == Path(other).resolve():
            raise UsageError(f"{flag} {text}: is {other}, which this command reads or writes; choose another file")
        if other is not None and Path(path).absolute() == Path(other).absolute():
            raise UsageError(f"{flag} {text}: is also given as another input or output; choose another file")
