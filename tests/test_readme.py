"""The README is a front page: short, and what it shows works. Every `prp-deploy` line in its
code blocks names a real command and only options that command has; its Python example
runs against a real export; every page it sends readers to exists."""

import re
import shlex
from pathlib import Path

import click
import pytest

from prp_deploy.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _command_lines() -> list[str]:
    """`prp-deploy` lines of the README's and the manual's shell blocks (results.md, a record
    of what was run when, is left as it was written)."""
    pages = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "results.md")]
    lines = []
    for page in pages:
        for block in _blocks("sh", page.read_text()):
            for line in block.splitlines():
                for part in line.split("&&"):
                    part = re.sub(r"\s#.*$", "", part).strip()
                    part = re.sub(r"\[([^\]]*)\]", r"\1", part)  # optional parts, as given
                    part = re.sub(r"(\S+?)\|\S+", r"\1", part)  # a|b: the first alternative
                    if re.match(r"(\.venv/bin/)?prp-deploy ", part):
                        lines.append(re.sub(r"^\.venv/bin/", "", part))
    return lines


def test_the_readme_is_a_front_page():
    assert README.count("\n") <= 300
    for page in re.findall(r"\]\((docs/[^)#]+)\)", README):
        assert (REPO / page).exists(), page


@pytest.mark.parametrize("line", _command_lines())
def test_every_command_line_names_real_options(line):
    argv = shlex.split(line)[1:]
    command = main
    while isinstance(command, click.Group) and argv and argv[0] in command.commands:
        command, argv = command.commands[argv[0]], argv[1:]
    assert not isinstance(command, click.Group), f"{line}: no such command"
    ctx = click.Context(command, info_name=command.name)
    try:  # click's own parser: options and their values as the command takes them, the rest positional
        _, positional, _ = command.make_parser(ctx).parse_args(argv)
    except click.UsageError as e:
        pytest.fail(f"{line}: {e}")
    assert not positional, f"{line}: {command.name} takes no more arguments than it declares; left over: {positional}"


def test_the_python_example_runs(exported, tmp_path, capsys):
    """The README's Python example, on a real export and a real video."""
    from tests.conftest import index_frame, write_video

    video = write_video(tmp_path / "video.mp4", [index_frame(i % 37) for i in range(40)], fourcc="mp4v")
    code = _blocks("python")[0].replace("runs/NAME/export", str(exported)).replace('"video.mp4"', repr(str(video)))
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) >= 5 and all(len(line.split()) == 3 for line in printed), printed
