"""Fuzzed inputs (property-based): real clips damaged the ways files break, through the
reader, `data info`'s probe, the training and evaluation loaders and the runtime's `run`.
Every outcome is frames read or a one-line error naming the file, never another exception.
`scripts/fuzz_inputs.py --cases 500` runs the long version in worker processes with a time
limit per case (docs/results.md)."""

import importlib.util
import logging
import signal
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from prp_deploy.data.corrupt import KINDS  # noqa: E402
from tests.conftest import SHARED_CLIPS, shared_clips  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_inputs", REPO / "scripts" / "fuzz_inputs.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)
CASE_SECONDS = 60
CLIPS = sorted(p for p in SHARED_CLIPS.rglob("*") if p.suffix in (".avi", ".mp4")) if SHARED_CLIPS.is_dir() else []


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    shared_clips("ucf101")  # skip (or fail under CI) without the real clips
    from prp_deploy.export.random_model import export_random

    return export_random("r3d", 10, 0.125, 8, 32, tmp_path_factory.mktemp("fuzz-export"), int8=False)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(src=st.sampled_from(CLIPS or [Path("missing")]), other=st.sampled_from(CLIPS or [Path("missing")]), kind=st.sampled_from(KINDS),
       at=st.floats(0, 1), size=st.sampled_from([1e-4, 1e-3, 0.01, 0.1]), seed=st.integers(0, 2**30))
def test_damaged_clips_give_frames_or_one_line_errors(export_dir, tmp_path, src, other, kind, at, size, seed):
    def hang(signum, frame):
        raise TimeoutError(f"no answer within {CASE_SECONDS} s: a hang on {kind} at {at:.3f} of {src.name}")

    logging.disable(logging.WARNING)
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(CASE_SECONDS)  # each case bounded in time: a reader that never returns fails the test instead of CI
    try:
        outcome = fuzz.run_case(str(src), kind, at, size, seed, str(other), str(export_dir), str(tmp_path))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        logging.disable(logging.NOTSET)
    bugs = {k: v for k, v in outcome.items() if v.startswith("bug")}
    assert not bugs, (kind, at, size, src.name, bugs)
