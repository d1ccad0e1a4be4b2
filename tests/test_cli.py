"""The CLI as a user runs it: a real process, its stdout, stderr and exit code."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import write_video, index_frame


def run(*args, cwd=None):
    env = {**os.environ}
    return subprocess.run([sys.executable, "-m", "prp_deploy", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def assert_one_line_error(result, pattern, code: int = 1):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], result.stderr


def test_help_and_version():
    r = run("--help")
    listed = {line.split()[0] for line in r.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert r.returncode == 0 and listed == {"data", "train", "export", "run", "bench", "index", "search", "explain", "report", "eval"}
    r = run("--version")
    assert r.returncode == 0 and "prp-deploy, version" in r.stdout


def test_synth_info_prepare_round_trip(tmp_path):
    out = tmp_path / "synth"
    r = run("data", "synth", str(out), "--classes", "3", "--groups", "3", "--clips-per-group", "1", "--size", "64x48", "--frames", "20:24")
    assert r.returncode == 0, r.stderr
    r = run("data", "info", "--data", str(out), "--dataset", "ucf101", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["classes"] == 3 and info["train_videos"] == 6 and info["test_videos"] == 3
    assert 9 * 20 <= info["frames_total"] <= 9 * 24 and info["unreadable_videos"] == 0
    assert info["per_class"] == {c: {"train": 2, "test": 1, "unreadable": 0} for c in ("SlideRight", "SlideLeft", "SlideUp")}
    r = run("data", "prepare", "--data", str(out), "--dataset", "ucf101", "--short-side", "32", "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "9 videos written" in r.stdout
    r = run("data", "prepare", "--data", str(out), "--dataset", "ucf101", "--short-side", "32")
    assert "0 videos written, 9 already there" in r.stdout


def test_info_names_unreadable_files_one_per_line(tmp_path):
    root = tmp_path / "folder"
    write_video(root / "walk" / "a.avi", [index_frame(i) for i in range(12)])
    write_video(root / "walk" / "b.avi", [index_frame(i) for i in range(12)])
    (root / "run").mkdir()
    write_video(root / "run" / "c.avi", [index_frame(i) for i in range(12)])
    (root / "run" / "broken.avi").write_bytes(b"not a video" * 20)
    r = run("data", "info", "--data", str(root), "--dataset", "folder")
    assert r.returncode == 0, r.stderr
    assert "unreadable 1" in r.stdout
    assert f"  {root / 'run' / 'broken.avi'}: cannot open as a video" in r.stdout
    lines = r.stdout.splitlines()  # the classes with their counts, the unreadable ones named
    run_line = next(line.split() for line in lines if line.split()[:1] == ["run"])
    assert int(run_line[1]) + int(run_line[3]) == 2 and run_line[-2:] == ["1", "unreadable"], r.stdout
    assert any(line.split()[0] == "walk" and "unreadable" not in line for line in lines), r.stdout


@pytest.mark.parametrize(
    "args,pattern,code",
    [
        (["data", "info", "--data", "/nonexistent/ucf", "--dataset", "ucf101"], "/nonexistent/ucf: no such folder", 1),
        (["data", "info", "--data", ".", "--dataset", "ucf101"], "no UCF-101/ folder", 1),
        (["data", "info", "--data", "."], "--data needs --dataset", 2),  # options that do not go together: a usage error
        (["data", "prepare", "--dataset", "hmdb51"], "needs --data ROOT", 2),
        (["data", "synth", "OUT", "--size", "big"], "--size wants WxH", 2),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(args, pattern, code, tmp_path):
    assert_one_line_error(run(*args, cwd=tmp_path), pattern, code)


def test_prepare_with_only_bad_videos_fails(tmp_path):
    root = tmp_path / "folder"
    (root / "x").mkdir(parents=True)
    (root / "x" / "a.avi").write_bytes(b"junk" * 10)
    (root / "x" / "b.avi").write_bytes(b"junk" * 10)
    r = run("data", "prepare", "--data", str(root), "--dataset", "folder")
    assert r.returncode == 1 and "no video could be cached" in r.stderr and "Traceback" not in r.stderr


def test_atomic_write_never_leaves_half_a_file(tmp_path):
    from prp_deploy.files import atomic_write

    target = tmp_path / "a.json"
    atomic_write(target, "old")

    def dies(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, dies)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and oct(target.stat().st_mode & 0o777) == "0o644"


def test_help_says_what_every_option_is_and_its_default():
    r = run("train", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "Layout of --data" in text and "Train/test split 1-3" in text and "[default: all]" in text
    assert "takes the preset's value" in text
    r = run("export", "--help")
    text = " ".join(r.stdout.split())
    assert "Real clips (from the run's test videos" in text and "rtol*|reference|" in text and "[default: 0.0001]" in text
