"""Indexes on small fixture trees in the three native layouts, built here."""

from pathlib import Path

import pytest

from prp_deploy.data.datasets import folder_index, hmdb51_index, load_index, ucf101_index
from prp_deploy.errors import PRPError


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # indexes do not decode; an empty file stands for a video here


def ucf_tree(root: Path) -> Path:
    # The UCF101 quirk: folder HandstandPushups holds v_HandStandPushups_* files.
    for cls, stem in [("ApplyEyeMakeup", "ApplyEyeMakeup"), ("HandstandPushups", "HandStandPushups")]:
        for g in (1, 2, 8):
            touch(root / "UCF-101" / cls / f"v_{stem}_g{g:02d}_c01.avi")
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    for k in (1, 2, 3):
        (lists / f"trainlist{k:02d}.txt").write_text(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\n"
        )
        (lists / f"testlist{k:02d}.txt").write_text(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi\n"
            "HandstandPushups/v_HandStandPushups_g01_c01.avi\n"
        )
    return root


def test_ucf101_class_comes_from_folder_not_file_name(tmp_path):
    index = ucf101_index(ucf_tree(tmp_path), 1)
    assert index.classes == ("ApplyEyeMakeup", "HandstandPushups")
    assert len(index.train) == 2 and len(index.test) == 3
    hs = [v for v in index.train + index.test if "HandStand" in v.path.name]
    assert hs and all(v.label == 1 for v in hs)


def test_ucf101_split_naming_absent_video_names_file_and_line(tmp_path):
    root = ucf_tree(tmp_path)
    (root / "ucfTrainTestlist" / "testlist02.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nApplyEyeMakeup/v_missing.avi\n")
    with pytest.raises(PRPError, match=r"testlist02\.txt:2: video ApplyEyeMakeup/v_missing\.avi is not in"):
        ucf101_index(root, 2)


def split_file_error(read_index, root: Path, split_file: Path, text: str, pattern: str, split: int = 1) -> None:
    """`split_file` holding `text` makes `read_index(root, split)` fail with a message matching `pattern`."""
    split_file.write_text(text)
    with pytest.raises(PRPError, match=pattern):
        read_index(root, split)


def test_ucf101_unknown_class_and_bad_label(tmp_path):
    root = ucf_tree(tmp_path)
    lists = root / "ucfTrainTestlist" / "trainlist01.txt"
    split_file_error(ucf101_index, root, lists, "Surfing/v_Surfing_g01_c01.avi 3\n", r"trainlist01\.txt:1: unknown class 'Surfing'")
    split_file_error(ucf101_index, root, lists, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\n",
                     r"trainlist01\.txt:1: label 2 contradicts class 'ApplyEyeMakeup'")


def test_ucf101_empty_class(tmp_path):
    root = ucf_tree(tmp_path)
    lists = root / "ucfTrainTestlist"
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    with pytest.raises(PRPError, match="class 'HandstandPushups' has no videos"):
        ucf101_index(root, 1)


def test_missing_root_and_layout(tmp_path):
    with pytest.raises(PRPError, match="no such folder"):
        ucf101_index(tmp_path / "nope", 1)
    with pytest.raises(PRPError, match="no UCF-101/ folder"):
        ucf101_index(tmp_path, 1)
    with pytest.raises(PRPError, match="split must be one of"):
        ucf101_index(ucf_tree(tmp_path), 4)


def hmdb_tree(root: Path) -> Path:
    lists = root / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    for cls in ("brush_hair", "wave"):
        for i in range(4):
            touch(root / "hmdb51_org" / cls / f"{cls}_clip{i}.avi")
        for k in (1, 2, 3):
            # 1 train, 2 test, 0 unused in this split
            (lists / f"{cls}_test_split{k}.txt").write_text(f"{cls}_clip0.avi 1 \n{cls}_clip1.avi 1 \n{cls}_clip2.avi 2 \n{cls}_clip3.avi 0 \n")
    return root


def test_hmdb51_native_split_files(tmp_path):
    index = hmdb51_index(hmdb_tree(tmp_path), 2)
    assert index.classes == ("brush_hair", "wave")
    assert len(index.train) == 4 and len(index.test) == 2
    assert not any("clip3" in v.path.name for v in index.train + index.test)
    assert {v.label for v in index.test if v.path.parent.name == "wave"} == {1}


def test_hmdb51_errors_name_file_and_line(tmp_path):
    root = hmdb_tree(tmp_path)
    split = root / "testTrainMulti_7030_splits" / "wave_test_split1.txt"
    split_file_error(hmdb51_index, root, split, "wave_clip0.avi 1\nwave_gone.avi 2\n", r"wave_test_split1\.txt:2: video wave_gone\.avi is not in")
    split_file_error(hmdb51_index, root, split, "wave_clip0.avi 7\n", r"wave_test_split1\.txt:1: expected '<file> 0\|1\|2'")


def folder_tree(root: Path) -> Path:
    for cls in ("jump", "run", "sit"):
        for i in range(5):
            touch(root / cls / f"{cls}{i}.{'mp4' if i % 2 else 'avi'}")
    touch(root / "run" / "notes.txt")  # not a video
    return root


def test_folder_seeded_split_is_deterministic_and_covers_every_class(tmp_path):
    root = folder_tree(tmp_path)
    a = folder_index(root, 1, test_fraction=0.4, seed=3)
    b = folder_index(root, 1, test_fraction=0.4, seed=3)
    c = folder_index(root, 1, test_fraction=0.4, seed=4)
    assert a.train == b.train and a.test == b.test
    assert {v.path for v in a.test} != {v.path for v in c.test}
    assert len(a.test) == 6 and len(a.train) == 9  # ceil(0.4·5) = 2 per class
    assert {v.label for v in a.test} == {0, 1, 2}
    assert not any(v.path.suffix == ".txt" for v in a.train + a.test)


def test_folder_explicit_split(tmp_path):
    root = folder_tree(tmp_path)
    (root / "trainlist.txt").write_text("jump/jump0.avi\nrun/run1.mp4\nsit/sit0.avi\n")
    (root / "testlist.txt").write_text("jump/jump1.mp4\n")
    index = folder_index(root)
    assert [v.path.name for v in index.train] == ["jump0.avi", "run1.mp4", "sit0.avi"]
    (root / "testlist.txt").write_text("dance/d.avi\n")
    with pytest.raises(PRPError, match=r"testlist\.txt:1: unknown class 'dance'"):
        folder_index(root)


def test_folder_empty_class(tmp_path):
    root = folder_tree(tmp_path)
    (root / "empty").mkdir()
    with pytest.raises(PRPError, match="class 'empty' has no videos"):
        folder_index(root)


def test_load_index_dispatch_and_unknown(tmp_path):
    assert load_index(folder_tree(tmp_path), "folder").name == "folder"
    with pytest.raises(PRPError, match="unknown dataset"):
        load_index(tmp_path, "kinetics")


def test_finetune_split_is_the_training_split_and_partitions_the_list():
    """Export judges INT8 on the videos the classifier was never fitted on: the split it
    recomputes must be the run's, and its three parts must partition the training list."""
    from types import SimpleNamespace

    from prp_deploy.data.datasets import Video
    from prp_deploy.data.splits import finetune_split
    from prp_deploy.training.splits import labelled_subset, split_validation

    train = [Video(Path(f"v{i}.avi"), i % 4) for i in range(80)]
    labelled, val, rest = finetune_split(train, "ucf101", 3, None, 5, None)
    assert len(val) == 12 and len(labelled) == 20 and len(rest) == 48  # 15 % cap; 5 of each of 4 classes
    paths = [v.path for v in labelled + val + rest]
    assert sorted(paths) == sorted(v.path for v in train)
    fitted, held = split_validation(train, 12, 3)
    assert [v.path for v in held] == [v.path for v in val] and [v.path for v in labelled_subset(fitted, SimpleNamespace(labels_per_class=5, label_fraction=None), 3)] == [v.path for v in labelled]
    assert finetune_split(train, "ucf101", 3, None, None, None)[2] == []  # no budget: every training video is fitted
