# The summary of a sync(), for Service.sync and aio.AsyncService.sync: everything but the
# waiting. A listener of the sync's events fills it in. begin() returns (stop, listener,
# summary): stop() ends the run when the sync is over (a correction, the policy giving up
# for now, or a next request too far away); end() unsubscribes and returns the summary.
# status() is the policy's record for status lines (the console, tools/sntp). Imported by
# the first sync() or status(): a board that only runs the service never loads it.
from .compat import const
from .sources import key_text

_GIVE_UP = ("backoff", "idle", "hold")  # a sync ends when the policy gives up for now
_SYNC_MAX_WAIT_MS = const(20_000)  # and does not wait for a request further away (R1)


def blank():
    """A summary of a sync that asked nothing (yet)."""
    return {
        "ok": False,  # the policy decided on a correction
        "error": None,  # the last failure's reason
        "detail": None,  # a sentence about it
        "offset_us": None,  # the correction, us
        "server": None,  # whose measurement was used
        "servers": [],  # who vouched for it
        "clock_set": False,  # and the rtc applied it
        "servers_tried": [],  # labels of the servers asked, in order
        "kiss": None,  # the last KoD code
        "failures": [],  # {"server", "error"} of every failed step
    }


def begin(svc):
    s = blank()
    replies = []  # (server, offset_us) of every good reply
    over = [False]  # the sync is over

    def fail(error, detail, server=None):
        s["error"], s["detail"] = error, detail
        s["failures"].append({"server": server, "error": error})

    def watch(e):
        kind = e["event"]
        server = e.get("server")
        if kind == "send":
            if server not in s["servers_tried"]:
                s["servers_tried"].append(server)
        elif kind == "reply":
            replies.append((server, e["offset_us"]))
        elif kind == "step":
            s["servers"] = e["servers"]
        elif kind == "clock":
            over[0] = s["ok"] = True
            s["clock_set"] = e["applied"]
            off = s["offset_us"] = e["offset_us"]
            s["server"] = s["servers"][0] if s["servers"] else None
            for r, o in replies:
                if o == off:
                    s["server"] = r  # the measurement the policy picked
            if not e["applied"]:
                s["error"], s["detail"] = "not-applied", e["detail"] or "no rtc to set"
        elif kind == "timeout":
            fail("timeout", "{}: no reply".format(server), server)
        elif kind == "reject":
            fail(e["reason"], "{}: reply rejected ({})".format(server, e["reason"]), server)
        elif kind == "kod":
            s["kiss"] = e["code"]
            fail("kiss", "{}: Kiss-o'-Death {}".format(server, e["code"]), server)
        elif kind == "resolve" and not e["ok"]:
            fail("resolve", e.get("detail") or "cannot resolve {}".format(server), server)
        elif kind == "disagree":  # falsetickers, or no majority at all
            for r in e["servers"]:
                fail("disagree", "{}: disagrees with the other servers".format(r), r)
        elif kind == "hold":
            fail("hourly-cap", "request cap of {} an hour reached".format(e["cap"]))
        elif kind == "idle":
            fail("no-servers", e.get("reason") or "no servers configured")
        if kind in _GIVE_UP:
            over[0] = True

    def stop():
        if not over[0]:
            due = svc.policy.due_ms  # the round's time (the hourly cap says so itself)
            if due is not None and due - svc.loop_ms() > _SYNC_MAX_WAIT_MS:
                over[0] = True  # the next request is further away than a person should wait
                wait_s = (due - svc.loop_ms()) // 1000
                fail("deferred", "next request allowed in {} s".format(wait_s))
        return over[0]

    svc.subscribe(watch)
    svc.boot(startup_delay=False)
    if not svc.sync_now():  # no servers: nothing to ask
        over[0] = True
        if s["error"] is None:
            fail("no-servers", "no servers configured (rule 3: no built-in default)")
    return stop, watch, s


def end(svc, begun):
    """The summary of the sync begin() started (begun: what it returned)."""
    _, watch, s = begun
    svc.unsubscribe(watch)
    svc.keeper.save()
    if s["ok"]:
        if s["clock_set"]:
            s["error"] = s["detail"] = None
    elif s["error"] is None:
        s["error"] = "unavailable"
        s["detail"] = "no server could be asked now (Kiss-o'-Death hold or DNS backoff)"
    return s


def status(k, now_ms):
    """Keeper k's policy as a record for status lines (Service.status()): interval_s,
    fails, kods, next_ms (None: nothing scheduled), last_sync_unix_s, last_offset_us, valid
    (the clock), floor_us (the build date), factory (only the factory server is asked),
    denied ({address: Unix s}), servers: server, address, sends, replies, kods, pool,
    dns_failures and state (ok, unresolved, dns-retry-in-Ns, denied-Ns or
    rate-limited-gap-Ns)."""
    p = k.policy
    return {
        "interval_s": p.interval_s,
        "fails": p.fails,
        "kods": p.kods,
        "next_ms": None if p.due_ms is None else max(0, p.due_ms - now_ms),
        "last_sync_unix_s": p.last_sync_unix_s,
        "last_offset_us": p.last_offset_us,
        "valid": k.wall_us() >= p.floor_us,
        "floor_us": p.floor_us,
        "factory": p.factory_source is not None and p.sources == [p.factory_source],
        "denied": dict(p.denied_wall),
        "servers": [_server(p, s, now_ms) for s in p.sources],
    }


def _server(p, s, now_ms):
    """The status record of source s of policy p."""
    state = "ok"
    if not s.addrs:
        state = "unresolved"
        if s.dns_fails:
            state = "dns-retry-in-{}s".format(max(0, s.dns_next_ms - now_ms) // 1000)
    else:
        peer = p.peers.get(s.addrs[s.idx].key)
        if peer is not None and peer.denied_until_ms > now_ms:
            state = "denied-{}s".format((peer.denied_until_ms - now_ms) // 1000)
        elif peer is not None and peer.rate_until_ms > now_ms:
            state = "rate-limited-gap-{}s".format(peer.rate_gap_ms // 1000)
    return {
        "server": s.label,
        "address": key_text(s.addrs[s.idx].key) if s.addrs else None,
        "state": state,
        "sends": s.sends,
        "replies": s.replies,
        "kods": s.kods,
        "pool": s.pool,
        "dns_failures": s.dns_fails,
    }
