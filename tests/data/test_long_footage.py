"""Long footage through the data layer: a truncated file keeps what decoded and says where it stopped."""

import shutil
import subprocess
import sys

from tests.conftest import shared_clips


def test_prepare_keeps_what_a_truncated_file_decoded_and_says_when_it_stopped(tmp_path):
    clips = shared_clips("ucf101")
    pitch = clips / "v_BaseballPitch_g03_c01.avi"  # 87 frames at 29.97 fps
    for name, src in (("Pitch/a.avi", pitch), ("Other/c.avi", clips / "v_ApplyEyeMakeup_g01_c01.avi"),
                      ("Other/d.avi", clips / "v_BaseballPitch_g01_c01.avi")):
        (tmp_path / "ds" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, tmp_path / "ds" / name)
    (tmp_path / "ds" / "Pitch" / "b.avi").write_bytes(pitch.read_bytes()[: pitch.stat().st_size // 2])
    r = subprocess.run([sys.executable, "-m", "prp_deploy", "data", "prepare", "--data", str(tmp_path / "ds"), "--dataset", "folder"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "4 videos written" in r.stdout and "0 failed" in r.stdout, r.stdout + r.stderr
    truncated = [line for line in r.stdout.splitlines() if line.strip().startswith("truncated")]
    assert len(truncated) == 1 and "b.avi: decoding stopped at frame 43 of the 87 its container claims (at 0:01.4 of 0:02.9)" in truncated[0], r.stdout


def test_counts_by_demuxing_equal_the_decoded_counts_on_real_clips():
    """probe counts packets without decoding; on every real clip here (UCF101, HMDB51 and
    others: XviD AVIs with 1-byte dropped-frame chunks, MP4s whose header lies) the count is
    what decoding to the end gives."""
    import cv2

    from prp_deploy.data.video import count_packets, open_capture
    from tests.conftest import SHARED_CLIPS

    shared_clips("ucf101")
    clips = sorted(p for p in SHARED_CLIPS.rglob("*") if p.suffix in (".avi", ".mp4"))
    assert len(clips) >= 30
    for clip in clips:
        cap = open_capture(clip)
        decoded = 0
        while cap.grab():
            decoded += 1
        claimed = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        assert count_packets(str(clip)) == decoded, (clip.name, decoded, claimed)


def test_what_ffmpeg_cannot_demux_is_left_to_the_decoding_count(tmp_path):
    import pytest

    from prp_deploy.data.video import count_packets, probe
    from prp_deploy.errors import VideoError

    fake = tmp_path / "notes.avi"
    fake.write_text("not a video at all\n" * 100)
    assert count_packets(str(fake)) is None
    with pytest.raises(VideoError, match="cannot open as a video"):
        probe(fake, counts=False)
