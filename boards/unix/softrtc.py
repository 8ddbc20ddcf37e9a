# The unix board's real-time clock, in software: board time = host clock + offset_us.
#
# The host clock is never changed. A correction only moves offset_us, and the state file
# (tools/sntp --state FILE) keeps it from one run to the next, with the policy state, so a
# test or a demo can start the board with a wrong or an invalid clock and watch it be fixed.
#
# State file: one JSON object. Every key is optional; unknown keys are dropped on save.
#   "kind"           "sntp-state": a configuration file ("sntp-config") given as --state is
#                    refused, and so is this one given as a configuration. A file without
#                    it (an older version's) is judged by its keys.
#   "v"              1, the schema version
#   "rtc_offset_us"  int: board clock minus host clock, in us (absent: 0, the host's time)
#   "rtc_unix_s"     int: set the board clock by hand: it reads this Unix time when the file
#                    is loaded (0: 1 January 1970, an invalid clock). It wins over
#                    rtc_offset_us, and is replaced by rtc_offset_us at the next save.
#   "policy"         object: the policy's own state (policy.Policy.state()), not read here
#   "servers"        list: each configured server's counters at the last save (sends,
#                    replies, kods...), shown by `tools/sntp status`, never read back
#   "saved_unix_s"   int: host time of the last save
# Examples: {"rtc_unix_s": 0} (the board believes it is 1970), {"rtc_offset_us": -5000000}
# (the board is 5 s behind). Integers only: a float offset is refused with a warning.
from sntp import config
from sntp.rtc import ProcessClock
from sntp.store import JsonStore
from sntp.timestamp import US_PER_S, unix_us

SCHEMA_VERSION = 1
KIND = "sntp-state"
_STATE_KEYS = ("v", "rtc_offset_us", "rtc_unix_s", "policy", "saved_unix_s")
_WHAT = {KIND: "a state file", config.KIND: "a configuration file"}
_AS = {KIND: "--state", config.KIND: "--config"}


class WrongKind(Exception):
    """A state file given for a configuration, or the other way round (one line of text)."""


def file_kind(doc):
    """KIND, config.KIND, another "kind" text, or None when the object could be either."""
    kind = doc.get("kind")
    if kind is not None:
        return kind if isinstance(kind, str) else repr(kind)
    if any(k in config.SCHEMA and k != "servers" for k in doc):
        return config.KIND
    if any(k in _STATE_KEYS for k in doc):
        return KIND
    servers = doc.get("servers")  # names in a configuration, counters (objects) in a state
    if isinstance(servers, list) and servers:
        return config.KIND if all(isinstance(x, str) for x in servers) else KIND
    return None


def check_kind(path, doc, want):
    """Raise WrongKind unless doc (the file at path, or None) may be read as kind want."""
    kind = file_kind(doc) if isinstance(doc, dict) else None
    if kind is None or kind == want:
        return
    what = _WHAT.get(kind, "not an sntp file (its kind is {})".format(kind))
    hint = " (give it as {})".format(_AS[kind]) if kind in _AS else ""
    raise WrongKind("{}: {}, not {}; left unchanged{}".format(path, what, _WHAT[want], hint))


class SoftRTC(ProcessClock):
    """A clock for the service (now_us, ticks, sleep, entropy) and its rtc (adjust):
    sntp.rtc.ProcessClock (host clock + offset_us), with a simulated drift.

    drift_ppb simulates a crystal's frequency error (tools/sntp --drift-ppm): positive, the
    board clock runs slow and falls behind the host by drift_ppb * elapsed / 10**9, so the
    clock discipline has a drift to find. Never persisted: each run says what it simulates.
    """

    def __init__(self, offset_us=0, host=None, drift_ppb=0):
        super().__init__(host)  # self.host: the untouched host clock
        self.offset_us = offset_us  # board minus host, us (drift lag folded in at each fold())
        self.drift_ppb = drift_ppb  # simulated frequency error, ppb, + = slow
        self.ref_host_us = self.host.now_us()  # host time the drift lag counts from

    def _lag_us(self, host_us):
        return self.drift_ppb * (host_us - self.ref_host_us) // 1_000_000_000

    def fold(self):
        """Fold the drift accumulated so far into offset_us (before a save or an adjust)."""
        h = self.host.now_us()
        self.offset_us -= self._lag_us(h)
        self.ref_host_us = h

    def now_us(self):
        """Board time, us since the port epoch."""
        h = self.host.now_us()
        return h + self.offset_us - self._lag_us(h)

    def adjust(self, offset_us):
        """The service's correction: move the board clock by offset_us (positive: forward)."""
        self.fold()
        return super().adjust(offset_us)


def _int(doc, key, warn, path):
    v = doc.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        warn("{}: {}: {!r} is not an integer, ignored".format(path, key, v))
        return None
    return v


class StateFile:
    """The --state FILE: the SoftRTC's offset and the policy state, saved atomically together.

    It is the service's store: load() -> the policy state, save(policy_state). self.rtc is
    the board clock, built from the file by open().
    """

    def __init__(self, path, host=None, warn=None):
        self.path = path  # the JSON file
        self.warn = warn if warn is not None else print  # one line per problem
        self.store = JsonStore(path, self.warn)
        self.rtc = SoftRTC(0, host)  # the board clock
        self.policy_state = None  # the dict the policy saved last, or None
        self.servers = None  # per-server counters to record, or None to keep the file's
        self.health = None  # the service's health() to record, or None to keep the file's
        self.doc = {}  # the file as loaded

    def open(self):
        """Read the file (a missing or broken one starts afresh, with a warning). Returns self.
        Raises WrongKind for a configuration file: saving over it would lose it."""
        doc = self.store.load() or {}
        check_kind(self.path, doc, KIND)
        return self.apply(doc)

    def apply(self, doc):
        """Take the board clock and the policy state from doc (the file's object)."""
        self.doc = doc
        offset = _int(doc, "rtc_offset_us", self.warn, self.path)
        if offset is not None:
            self.rtc.offset_us = offset
        when_s = _int(doc, "rtc_unix_s", self.warn, self.path)
        if when_s is not None:
            self.rtc.set_unix_us(when_s * US_PER_S)
        policy = doc.get("policy")
        self.policy_state = policy if isinstance(policy, dict) else None
        return self

    def load(self):
        return self.policy_state

    def save(self, policy_state):
        self.policy_state = policy_state
        return self.flush()

    def flush(self):
        self.rtc.fold()
        servers = self.servers if self.servers is not None else self.doc.get("servers")
        doc = {
            "kind": KIND,
            "v": SCHEMA_VERSION,
            "rtc_offset_us": self.rtc.offset_us,
            "policy": self.policy_state,
            "servers": servers if isinstance(servers, list) else [],
            "health": self.health if self.health is not None else self.doc.get("health"),
            "saved_unix_s": unix_us(self.rtc.host.now_us(), self.rtc.epoch_s) // US_PER_S,
        }
        return self.store.save(doc)

    @property
    def warning(self):
        return self.store.warning
