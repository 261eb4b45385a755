"""The host's GPU rule as a pure function (domain/policy.py): order, decay, quotas, the admin's
file checked field by field."""

from __future__ import annotations

import math

import pytest

from jupyter_jobs.domain.policy import (Limits, Policy, PolicyError, Span, Usage, Waiting, decayed_hours, hold,
                                        order, refuse, usage_of, why_behind)

NOW = 1_800_000_000.0
H = 3600.0


def test_usage_decays_with_its_half_life_and_the_day_counts_plainly():
    an_hour_now = [Span(1, NOW - H, NOW)]
    an_hour_a_day_ago = [Span(1, NOW - 25 * H, NOW - 24 * H)]
    assert decayed_hours(an_hour_now, NOW, 24) == pytest.approx(1.0, rel=0.02)
    assert decayed_hours(an_hour_a_day_ago, NOW, 24) == pytest.approx(0.5, rel=0.02)
    # 4 GPUs held for 2 hours, still running: decayed below 8, the day's count exactly 8
    used = usage_of([Span(4, NOW - 2 * H)], NOW, half_life_hours=24)
    assert (used.gpus, used.running, used.day) == (4, 1, pytest.approx(8.0))
    assert used.decayed == pytest.approx(4 * 24 / math.log(2) * (1 - 2 ** (-2 / 24)))  # 7.77
    assert math.isclose(usage_of([Span(2, NOW - 30 * H, NOW - 20 * H)], NOW, 24).day, 8.0)


def test_priority_then_fair_share_then_age():
    usage = {"alice": Usage(decayed=30.0), "bob": Usage(decayed=2.0)}
    a_old = Waiting("a1", "alice", 1, since=1.0)
    b_new = Waiting("b1", "bob", 1, since=5.0)
    c_urgent = Waiting("c1", "carol", 1, since=9.0, priority=5)
    b_newer = Waiting("b2", "bob", 1, since=6.0)
    assert [w.key for w in order([a_old, b_newer, b_new, c_urgent], usage)] == ["c1", "b1", "b2", "a1"]
    assert why_behind(a_old, [b_new], usage) == \
        "alice has used 30.0 GPU-h lately, more than bob (2.0 GPU-h); #2 for a GPU"
    assert why_behind(b_new, [c_urgent], usage).startswith("carol's job has priority 5, more than 0")
    assert why_behind(b_newer, [c_urgent, b_new], usage).endswith("#3 for a GPU")


def test_the_admin_caps_priority_per_user():
    policy = Policy.from_json({"default": {"max_priority": 0}, "users": {"alice": {"max_priority": 10}}})
    assert policy.priority("alice", 50) == 10
    assert policy.priority("bob", 50) == 0
    assert policy.priority("bob", -5) == -5, "anyone may ask for less"


def test_quotas_hold_and_refuse_in_words():
    policy = Policy.from_json({"default": {"gpus": 2, "running": 3, "gpu_hours_per_day": 30},
                               "projects": {"vision": {"gpus": 3}}})
    job = Waiting("j", "alice", 1, since=1.0, project="vision")
    assert hold(job, policy, {"alice": Usage(gpus=1, running=1)}, {}) is None
    assert hold(job, policy, {"alice": Usage(gpus=2, running=2)}, {}) == "alice holds 2 GPUs of 2 allowed at once"
    assert hold(job, policy, {"alice": Usage(day=31.5)}, {}) == \
        "alice has used 31.5 GPU-h in the last 24 h, the most allowed is 30"
    assert hold(job, policy, {}, {"vision": Usage(gpus=3)}) == "project vision holds 3 GPUs of 3 allowed at once"
    assert refuse("alice", None, 4, policy) == "asks for 4 GPUs; alice may hold 2 at once"
    assert refuse("alice", None, 2, policy) is None


@pytest.mark.parametrize(("data", "words"), [
    ({"half_life_hours": 0}, "half_life_hours: 0 is not a positive number of hours"),
    ({"users": {"bob": {"gpus": "2"}}}, "users.bob.gpus: '2' is not a whole number"),
    ({"default": {"gpus": -1}}, "default.gpus: -1 is less than 0"),
    ({"projects": {"x": {"gpu_hours": 3}}}, "projects.x.gpu_hours: unknown limit"),
    ({"quotas": {}}, "unknown field 'quotas'"),
    ([], "the policy must be a JSON object"),
])
def test_a_policy_file_that_cannot_be_applied_names_the_field(data, words):
    with pytest.raises(PolicyError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Policy.from_json(data)


def test_a_users_own_limits_override_the_defaults_only_where_set():
    policy = Policy.from_json({"default": {"gpus": 2, "running": 2}, "users": {"alice": {"gpus": 4}}})
    assert policy.limits("alice") == Limits(max_priority=0, gpus=4, running=2)
    assert policy.limits("bob") == Limits(max_priority=0, gpus=2, running=2)


def test_preemption_takes_the_least_entitled_preemptible_jobs_and_only_enough_of_them():
    from jupyter_jobs.domain.policy import Running, victims

    usage = {"alice": Usage(decayed=1.0), "bob": Usage(decayed=20.0)}
    urgent = Waiting("w", "alice", 2, since=9.0, priority=5)
    old_low = Running("r1", "bob", 1, priority=0, started=1.0, preemptible=True)
    new_low = Running("r2", "bob", 1, priority=0, started=5.0, preemptible=True)
    kept = Running("r3", "bob", 4, priority=0, started=2.0, preemptible=False)
    higher = Running("r4", "bob", 1, priority=9, started=3.0, preemptible=True)
    chosen = victims(urgent, [old_low, kept, higher, new_low], free=0, usage=usage)
    assert [(r.key, why) for r, why in chosen] == [
        ("r2", "alice's job has priority 5, more than its 0"), ("r1", "alice's job has priority 5, more than its 0")]
    assert victims(urgent, [old_low, new_low], free=2, usage=usage) == [], "it fits already"
    assert victims(urgent, [old_low, kept], free=0, usage=usage) == [], "one would not free enough: none"
    fair = Waiting("f", "alice", 1, since=9.0)
    assert victims(fair, [new_low], 0, usage)[0][1] == \
        "alice has used 1.0 GPU-h lately, less than bob (20.0 GPU-h), at the same priority"
    assert victims(Waiting("g", "bob", 1, since=9.0), [Running("a", "alice", 1, 0, 1.0, True)], 0, usage) == []
