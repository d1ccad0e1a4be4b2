"""The PyAV file layer: frame k reached by seeking is frame k decoded from the start, pixel for
pixel, on every codec family users bring; times come from the stream."""

import numpy as np
import pytest

from prp_deploy.data.video import read_frames
from prp_deploy.data.video_file import VideoFile
from prp_deploy.errors import VideoError
from tests.av_videos import encode, opencv_frames
from tests.conftest import shared_clips

VFR_MS = [i * 33 + (i % 3) * 7 + (i // 20) * 50 for i in range(60)]  # uneven steps and two jumps


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("av")
    made = {suffix: encode(folder / f"clip{suffix}", 60) for suffix in (".mp4", ".avi", ".webm", ".ts")}
    made["vfr"] = encode(folder / "vfr.mp4", 60, times_ms=VFR_MS)
    return made


@pytest.mark.parametrize("kind", [".mp4", ".avi", ".webm", "vfr"])
def test_a_sought_frame_is_the_frame_decoded_from_the_start(videos, kind):
    with VideoFile(videos[kind]) as video:
        forward = [f.bgr for f in video.frames()]
        assert len(forward) == video.frame_count == 60
        assert video.index.keyframe.sum() >= 3  # the file really has places to seek to
        for k in range(60):  # each frame on its own: a seek (or a rewind) every time
            assert np.array_equal(video.read([k])[0], forward[k]), f"frame {k}"
        for start in range(0, 60, 9):  # runs that begin mid-GOP
            got = list(video.frames(start, start + 7))
            assert [f.index for f in got] == list(range(start, min(start + 7, 60)))
            assert all(np.array_equal(f.bgr, forward[f.index]) for f in got)
        shuffled = np.random.default_rng(1).integers(0, 60, 30)
        assert all(np.array_equal(a, forward[k]) for a, k in zip(video.read(shuffled), shuffled))
        assert video.notice is None


@pytest.mark.parametrize("kind", [".mp4", ".avi", ".webm", "vfr"])
def test_frames_equal_opencvs_so_training_inputs_do_not_move(videos, kind):
    with VideoFile(videos[kind]) as video:
        ours = [f.bgr for f in video.frames()]
    theirs = opencv_frames(videos[kind])
    assert len(ours) == len(theirs)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))


def test_a_seek_decodes_the_frames_after_a_keyframe_not_the_file(videos):
    with VideoFile(videos[".mp4"]) as video:
        video.read([57])
        keyframes = np.flatnonzero(video.index.keyframe)
        assert keyframes[-1] > 40
        assert video.frames_decoded <= 60 - keyframes[-1] + 4  # a few reordered frames past the target at most


def test_times_are_the_streams_own(videos):
    with VideoFile(videos["vfr"]) as video:
        times = [f.time_s for f in video.frames()]
    assert times == pytest.approx([t / 1000 for t in VFR_MS], abs=1e-6)
    with VideoFile(videos[".ts"]) as video:  # MPEG-TS starts at a non-zero timestamp
        assert video.index.pts[0] > 0
        times = [f.time_s for f in video.frames()]
    assert times == pytest.approx([i / 25 for i in range(60)], abs=1e-6)


def test_the_frame_at_a_time(videos):
    with VideoFile(videos["vfr"]) as video:
        assert video.index.frame_at(0.0) == 0
        assert video.index.frame_at(VFR_MS[30] / 1000) == 30
        assert video.index.frame_at(VFR_MS[30] / 1000 + 0.001) == 31
        assert video.index.frame_at(100.0) == 60
        assert video.index.frame_until(VFR_MS[30] / 1000) == 30
        assert video.index.frame_until(VFR_MS[30] / 1000 - 0.001) == 29
        assert video.index.frame_until(-1.0) == -1


def test_past_the_end_is_a_video_error(videos):
    with VideoFile(videos[".mp4"]) as video:
        with pytest.raises(VideoError, match="has 60 frames, frame 60 was needed"):
            video.read([3, 60])


def test_packed_b_frames_are_read_forward_and_said_so():
    """MPEG-4 in AVI with DivX 'packed B-frames' (common in UCF101 and HMDB51) labels decoded
    frames out of order: a seek cannot trust them, so the layer reads forward and says so."""
    clip = shared_clips("hmdb51") / "TrumanShow_wave_f_nm_np1_fr_med_26.avi"
    forward = opencv_frames(clip)
    with VideoFile(clip) as video:
        second_key = int(np.flatnonzero(video.index.keyframe)[1])
        got = list(video.frames(second_key + 2, second_key + 6))
        assert video.notice and "reading forward" in video.notice
        assert [f.index for f in got] == list(range(second_key + 2, second_key + 6))
        assert all(np.array_equal(f.bgr, forward[f.index]) for f in got)
        assert all(np.array_equal(a, forward[k]) for a, k in zip(video.read([40, 3, 30]), [40, 3, 30]))


def test_every_real_clip_seeks_to_its_own_frames():
    for folder in ("ucf101", "hmdb51", "other"):
        for clip in sorted(p for p in shared_clips(folder).rglob("*") if p.is_file() and p.suffix != ".md"):
            forward = opencv_frames(clip)
            picks = np.random.default_rng(0).integers(0, len(forward), 6)
            assert all(np.array_equal(a, forward[k]) for a, k in zip(read_frames(clip, picks), picks)), clip.name


def test_a_raw_stream_without_timestamps_is_read_forward_by_opencv_and_said_once(tmp_path, caplog):
    import av

    raw = tmp_path / "raw.h264"
    with av.open(str(raw), "w", format="h264") as container:  # an elementary stream: no container, no timestamps
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 8, np.uint8), format="bgr24")))
        container.mux(stream.encode())
    with pytest.raises(VideoError, match="cannot be listed by timestamp"):
        VideoFile(raw)
    with caplog.at_level("WARNING"):
        first = read_frames(raw, [20, 5])
        second = read_frames(raw, [5])
    assert np.array_equal(first[1], second[0]) and np.array_equal(first[0], opencv_frames(raw)[20])
    lines = [r.getMessage() for r in caplog.records if "reading it forward with OpenCV" in r.getMessage()]
    assert len(lines) == 1 and str(raw) in lines[0]


def test_a_files_index_is_listed_once_per_process(videos):
    """The demux pass runs once per file and process: a training sample or a thumbnail opening
    the same long file again pays no second listing (0.23 s for 30 minutes)."""
    from prp_deploy.data.video_file import frame_index

    first = frame_index(str(videos[".webm"]))
    assert frame_index(str(videos[".webm"])) is first
    with VideoFile(videos[".webm"]) as video:
        assert video.index is first
