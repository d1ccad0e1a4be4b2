"""`index --ray`: the library job on a real local Ray cluster of 2 CPUs (Ray Data, an actor pool
of engines). It must give the library the single-process job gives, survive a killed actor
with no missing and no duplicated row, and continue after a killed driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("faiss")
ray = pytest.importorskip("ray")

from prp_deploy.library import IndexOptions, Library  # noqa: E402
from tests.library.conftest import assert_same_library, videos_of  # noqa: E402

pytestmark = pytest.mark.slow
ACTOR_TITLE = b"ray::MapWorker(MapBatches(EmbedWorker))"  # Ray titles an actor's process after its class


def actor_pids() -> list[int]:
    """The processes of the live embedding actors (Ray's state API needs its dashboard, which the job does not start)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if f.read().startswith(ACTOR_TITLE):
                        pids.append(int(d))
            except OSError:
                pass  # the process ended between listing /proc and reading it
    return sorted(pids)


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for this module's in-process tests (the job joins it rather than starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_the_ray_library_equals_the_single_process_one(cluster, library, exported, tmp_path):
    lib = Library(tmp_path / "lib")
    report = lib.add([str(p) for p in videos_of(exported)], exported, IndexOptions(ray="local", actors=2), say=lambda s: None)
    assert report.engine == "ray" and report.added == len(videos_of(exported)) and not report.failed
    assert_same_library(lib, library)
    assert ray.is_initialized()  # a cluster the job joined is left running


def test_a_killed_actor_leaves_no_missing_and_no_duplicated_row(cluster, library, exported, tmp_path):
    """After the first source comes back, one live actor's process is killed (SIGKILL, as the OOM
    killer would); Ray Data restarts it and retries its work; the library is still complete and exact."""
    killed = []

    def kill_one(_result):
        if killed:
            return
        alive = actor_pids()
        assert alive, "no live embedding actor to kill"
        os.kill(alive[0], signal.SIGKILL)
        killed.append(alive[0])

    lib = Library(tmp_path / "lib")
    report = lib.add([str(p) for p in videos_of(exported)], exported, IndexOptions(ray="local", actors=2), say=lambda s: None,
                     on_result=kill_one)
    assert killed and report.added == len(videos_of(exported)) and not report.failed
    assert_same_library(lib, library)


def test_a_killed_driver_is_continued_by_the_same_command(library, exported, tmp_path):
    """The CLI on its own local cluster, killed (driver and cluster, SIGKILL) once a part is committed:
    the same command again embeds only what is missing, and the library equals the single-process one."""
    out = tmp_path / "lib"
    videos = [str(p) for p in videos_of(exported)]
    cmd = [sys.executable, "-m", "prp_deploy", "index", *videos, "--model", str(exported), "--out", str(out), "--ray", "local",
           "--actors", "2", "--commit-every", "2", "--sources-per-task", "1", "-q"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if (out / "parts").exists() and len([p for p in (out / "parts").iterdir() if not p.name.startswith(".")]) >= 2:
            break
        time.sleep(0.1)
    assert first.poll() is None, f"the job ended before it could be killed: {first.communicate()[1].decode()[-500:]}"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done = len(Library(out).table("videos"))
    assert 4 <= done < len(videos)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    summary = next(l for l in second.stderr.splitlines() if l.startswith("indexed "))
    assert f"indexed {len(videos) - done} new source(s)" in summary and f"{done} already in the library" in summary
    assert_same_library(Library(out), library)
