"""Two `run()` calls in two threads of one process (an application serving two cameras, say):
each summary counts its own sources, frames, open decoders and engines, not the other's."""

import threading

import numpy as np

from prp_deploy.runtime.options import RunOptions
from prp_deploy.runtime.run import RunOutputs, RunSettings, run
from prp_deploy.runtime.sources import FrameReader
from tests.conftest import write_video
from tests.runtime.conftest import LEVELS

FRAMES = 48


def _folder(root, level: str, count: int):
    for i in range(count):
        frames = [np.full((48, 64, 3), LEVELS[level], np.uint8)] * FRAMES
        write_video(root / level / f"{level}{i}.avi", frames)
    return root / level


def test_two_runs_in_two_threads_keep_separate_summaries(brightness_model, tmp_path):
    jobs = {"dark": (_folder(tmp_path, "dark", 6), 1), "bright": (_folder(tmp_path, "bright", 4), 4)}  # level → (folder, --max-open)
    summaries, errors = {}, []
    together = threading.Barrier(len(jobs))

    def one_run(level: str) -> None:
        folder, max_open = jobs[level]
        together.wait()
        try:
            outputs = RunOutputs(out=tmp_path / f"out-{level}", many=True, max_open=max_open, progress=False)
            settings = RunSettings(allow_unverified=True, windows=RunOptions(batch=2), outputs=outputs)
            summaries[level] = run(str(folder), model=brightness_model, options=settings)
        except Exception as e:  # the assertion below names it
            errors.append(e)

    threads = [threading.Thread(target=one_run, args=(level,)) for level in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    dark, bright = summaries["dark"]["totals"], summaries["bright"]["totals"]
    assert (dark["sources"], dark["ok"], dark["frames"]) == (6, 6, 6 * FRAMES)
    assert (bright["sources"], bright["ok"], bright["frames"]) == (4, 4, 4 * FRAMES)
    # Each run's own decoders: the dark run opens one at a time while the bright one opens up to four.
    assert dark["max_open_decoders"] == 1 and 1 <= bright["max_open_decoders"] <= 4, (dark, bright)
    assert dark["engine_starts"] == 1 and bright["engine_starts"] == 1  # one engine each, counted by its own run
    assert {r["video_top1"] for r in summaries["dark"]["sources"]} == {"dark"}
    assert {r["video_top1"] for r in summaries["bright"]["sources"]} == {"bright"}
    assert dark["windows"] == sum(r["windows"] for r in summaries["dark"]["sources"])
    assert FrameReader.process_open.now == 0  # every decoder of both runs released
