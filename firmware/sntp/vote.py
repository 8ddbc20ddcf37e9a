# R5 of policy.py: which replies of a round to believe. A lone reply is followed only when
# the clock is valid and the offset is within the clock's own error bound (the discipline's
# bound, at most accuracy_ms before a power-on's first sync or after a reboot), or when
# exactly one server is configured. Anything else needs a group of at least two servers
# that agree and are a strict majority of the distinct addresses that replied (rule 11):
# an invalid clock as soon as two or more replies all agree (a cold start asks two), else
# once every source of the round has been asked. So a lone liar never moves the clock, nor
# do two liars against two honest servers unless they agree and are the first two asked of
# an invalid clock.
from .compat import const

# Two replies agree within _AGREE_TOLERANCE_US plus half their two round trips; without an
# error bound (no discipline), an offset above AGREE_ABOVE_US needs a majority.
AGREE_ABOVE_US = const(1_000_000)
_AGREE_TOLERANCE_US = const(250_000)


class Correction:
    """Move the clock by offset_us (positive: forward), as servers vouched."""

    def __init__(self, offset_us, servers, delay_us, root_us=0):
        self.offset_us = offset_us  # signed us
        self.servers = servers  # the source labels that vouched for it
        self.delay_us = delay_us  # round trip of the measurement used, us
        self.root_us = root_us  # its server's root distance, us


class Sample:
    """A good reply of the round in progress."""

    MS = ("t_ms",)  # its time points (Policy.rebase moves them)

    def __init__(self, t_ms, src, key, offset_us, delay_us, root_us=0):
        self.t_ms = t_ms  # when it came
        self.src = src  # Source
        self.key = key  # (ip, port) it came from
        self.offset_us = offset_us
        self.delay_us = delay_us  # round trip
        self.root_us = root_us  # the server's root distance


def choose(samples, valid, agree_us, one_source, more_left):
    """The samples that vouch for a correction; [] when none can (the round failed); None
    while more replies are needed. valid: the clock is; agree_us: the largest offset a lone
    reply may have (the clock's own bound); more_left: a source of the round is unasked."""
    latest = samples[-1]
    if one_source or (valid and abs(latest.offset_us) <= agree_us):
        return [latest]
    chosen = _majority(samples)
    # a large step waits until every source has been asked; an invalid clock stops as soon
    # as two or more replies all agree (a cold start asks two)
    if more_left and (valid or chosen is None or len(chosen) < len(samples)):
        return None
    return chosen or []


def best(chosen):
    """The chosen sample with the smallest round trip: the best measurement."""
    pick = chosen[0]
    for s in chosen:
        if s.delay_us < pick.delay_us:
            pick = s
    return pick


def near(a, b):
    """Two replies agree: within the tolerance plus half their two round trips (R5)."""
    return abs(a.offset_us - b.offset_us) <= _AGREE_TOLERANCE_US + (a.delay_us + b.delay_us) // 2


def _majority(samples):
    """The largest group of distinct addresses agreeing with one another within the
    tolerance, if it has at least two members and more than all the other replies."""
    best = []
    for a in samples:
        group = []
        for b in samples:
            if near(a, b) and b.key not in [c.key for c in group]:
                group.append(b)
        if len(group) > len(best):
            best = group
    distinct = []
    for s in samples:
        if s.key not in distinct:
            distinct.append(s.key)
    return best if len(best) >= 2 and 2 * len(best) > len(distinct) else None
