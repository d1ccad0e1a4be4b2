"""click parameter types of the `prp-deploy` command."""

from __future__ import annotations

import click


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
