# The rooms of firmware/sntp keep to themselves: a Policy's fields are set only in policy.py
# (conftest.py guards every CPython test; this file checks that the guard can fail), and the
# time points rebase() moves are the ones each class names.
import os

import pytest
from conftest import ROOT, _outsider

from sntp import policy, schema, sources, vote


def test_the_guard_names_code_outside_policy_py_and_spares_policy_py_and_tests():
    fw = os.path.join(ROOT, "firmware", "sntp")
    assert _outsider(os.path.join(fw, "keeper.py")) and _outsider(os.path.join(fw, "console.py"))
    assert _outsider(os.path.join(ROOT, "tools", "simdev.py"))
    assert not _outsider(os.path.join(fw, "policy.py"))
    assert not _outsider(os.path.join(ROOT, "host_tests", "test_policy.py"))


def test_the_guard_catches_an_assignment_made_outside_policy_py(
    policy_fields_are_set_only_by_the_policy,
):
    p = policy.Policy(schema.Config.from_dict({"zone": "acme"}), lambda n: 0)
    code = compile("p.dirty = True", os.path.join(ROOT, "tools", "elsewhere.py"), "exec")
    exec(code, {"p": p})  # as if tools/elsewhere.py set it
    caught = list(policy_fields_are_set_only_by_the_policy)
    policy_fields_are_set_only_by_the_policy.clear()  # this test's own assignment: expected
    assert caught == ["tools/elsewhere.py: dirty = True"], caught


@pytest.mark.parametrize(
    "make",
    [
        lambda: policy.Policy(schema.Config.from_dict({"zone": "acme"}), lambda n: 0),
        lambda: sources.Source("ntp.example.com", 123),
        lambda: sources.Peer(),
        lambda: vote.Sample(0, None, ("192.0.2.1", 123), 0, 0),
    ],
)
def test_every_time_point_is_one_rebase_moves(make):
    # a ms field that rebase() missed would break after 6.2 days of uptime: every field
    # named *_ms is a time point in the class's MS, or one of the durations named here
    durations = {"gap_ms", "rate_gap_ms", "now_ms", "base_ms"}
    obj = make()
    fields = {k for k in vars(obj) if k.endswith("_ms")}
    assert fields - durations == set(type(obj).MS), sorted(fields)


def test_rebase_moves_every_time_point_back():
    p = policy.Policy(schema.Config.from_dict({"servers": ["ntp.example.com"]}), lambda n: 0)
    p.start(1_000_000, 0, None)
    peer = sources.peer_of(p.peers, ("192.0.2.1", 123))
    peer.last_send_ms = peer.rate_until_ms = peer.denied_until_ms = 900_000
    before = {n: getattr(p, n) for n in p.MS}
    p.rebase(500_000)
    for n, t in before.items():
        assert getattr(p, n) == (None if t is None else max(t - 500_000, -500_000)), n
    assert (peer.last_send_ms, peer.rate_until_ms, peer.denied_until_ms) == (400_000,) * 3
