"""click parts of the `prp-deploy` command: its error handling and parameter types."""

from __future__ import annotations

import os
import signal
import sys

import click

from .errors import PRPError, UsageError


class CommaList(click.ParamType):
    """`1,2,4,8` → (1, 2, 4, 8); with `choices`, `a,b` → ("a", "b") checked against them."""

    name = "list"

    def __init__(self, item=int, choices: tuple[str, ...] | None = None):
        self.item, self.choices = item, choices

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            items = tuple(self.item(v.strip()) for v in str(value).split(",") if v.strip())
        except ValueError:
            self.fail(f"wants a comma list of {self.item.__name__}s, got {value!r}", param, ctx)
        bad = [v for v in items if self.choices is not None and v not in self.choices]
        if not items or bad:
            self.fail(f"{bad[0] if bad else value!r} is not one of {', '.join(self.choices or ())}" if bad else "is empty", param, ctx)
        return items


class ReconnectCount(click.ParamType):
    """`forever` → None; `N` → N reopens in a row (0: an outage ends the source)."""

    name = "N|forever"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).strip().lower() == "forever":
            return None
        if not str(value).strip().isdigit():
            self.fail(f"wants a count of reopens (0 or more) or forever, got {value!r}", param, ctx)
        return int(value)


class TimePoint(click.ParamType):
    """A time in a file: seconds (`1740`, `12.5`) or `[HH:]MM:SS[.fff]` (`00:29:00`) → seconds."""

    name = "SECONDS|HH:MM:SS"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, float):
            return value
        parts = str(value).strip().split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if not 1 <= len(numbers) <= 3 or any(n < 0 or n != n for n in numbers) or any(n >= 60 for n in numbers[1:]):
            self.fail(f"wants seconds or HH:MM:SS, got {value!r}", param, ctx)
        seconds = 0.0
        for n in numbers:
            seconds = seconds * 60 + n
        return seconds


# What the [train] extra brings: a command that needs one of these says so in one line.
TRAIN_EXTRA = {"torch", "yaml", "cattrs", "onnx", "onnxscript", "matplotlib", "tensorboard"}


class OneLineErrors(click.Group):
    """Turns user errors into one line and a non-zero exit, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PRPError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2 if isinstance(e, UsageError) else 1)
        except ModuleNotFoundError as e:
            missing = (e.name or "").split(".")[0]
            if missing not in TRAIN_EXTRA:
                raise
            click.echo(f"error: `prp-deploy {ctx.invoked_subcommand}` needs {missing}, which comes with training and export: "
                       "pip install 'prp-deploy[train]'", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader of stdout went away (`prp-deploy run v.mp4 | head -1`): stop quietly,
            # as `cat` does, with the status of a process ended by SIGPIPE. The run's finally
            # blocks have closed its files and joined its readers by now; stdout goes to
            # /dev/null so the interpreter's last flush does not fail a second time.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
