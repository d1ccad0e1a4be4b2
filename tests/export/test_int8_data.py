"""Which videos INT8 is calibrated on, steered by and judged on."""

from __future__ import annotations

from collections import Counter

from prp_deploy.data.datasets import Video
from prp_deploy.export.int8_data import judge_and_steer
from prp_deploy.export.parity_clips import by_class_round_robin


def test_the_judge_and_the_steer_each_see_every_class():
    """8 classes (an even number, as the built-in data has): halving the class-by-class round
    robin gave the judge classes 0, 2, 4, 6 only; each half must span all 8, about evenly."""
    pool = by_class_round_robin([Video(f"c{c}/v{i}.avi", c) for c in range(8) for i in range(6)] +
                                [Video(f"c8/v{i}.avi", 8) for i in range(3)])  # and an odd-sized class
    judge, steer = judge_and_steer(pool)
    assert {v.label for v in judge} == {v.label for v in steer} == set(range(9))
    assert not {v.path for v in judge} & {v.path for v in steer} and len(judge) + len(steer) == len(pool)
    j, s = Counter(v.label for v in judge), Counter(v.label for v in steer)
    assert all(abs(j[c] - s[c]) <= 1 for c in range(9))
    assert [v.label for v in judge[:9]] == list(range(9))  # ordered a class at a time: a cut keeps every class
    eight = by_class_round_robin([Video(f"c{c}/v{i}.avi", c) for c in range(8) for i in range(6)])
    assert {v.label for v in eight[0::2]} == {0, 2, 4, 6}  # the split this replaced
    assert all({v.label for v in half} == set(range(8)) for half in judge_and_steer(eight))
