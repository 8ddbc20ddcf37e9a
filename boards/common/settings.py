# The board's stored configuration: one JSON object in /config.json on the board's flash.
#
#   {"wifi_ssid": "factory-net", "wifi_pass": "...", "zone": "acme", "accuracy_ms": 100}
#
# Keys (every one optional; see config.example.json):
#   wifi_ssid    str, 1-32 bytes: the Wi-Fi network to join. Absent: no Wi-Fi and no time
#                service; the application still runs, on the RTC.
#   wifi_pass    str, at most 64 bytes ("" for an open network)
#   country      str, two letters: the Wi-Fi regulatory domain (network.country), e.g. "DE"
#   zone         str: your NTP Pool vendor zone ("acme" -> 0.acme.pool.ntp.org ...); never
#                the plain pool.ntp.org names as a product default
#   servers      list of str: further NTP servers ("ntp.example.com", "192.0.2.1:123")
#   accuracy_ms  int, 1-60000: how far the clock may wander (default 100), for the discipline
#   poll_min_s, poll_max_s  int: the policy's poll bounds (firmware/sntp/policy.py checks them)
# zone, servers and the poll bounds are handed to the time service, which warns about what it
# cannot use ("config" events). Everything else is checked here: a missing or broken file, or
# a key of the wrong type, falls back to its default with one line on the console.
# Never commit a real passphrase: the file lives on the board (make deploy CONFIG=...).
from sntp.store import NOT_FOUND, read_json

CONFIG_PATH = "/config.json"
DEFAULT_ACCURACY_MS = 100
MAX_ACCURACY_MS = 60_000

# Keys passed on to sntp.aio.start() as its config.
SERVICE_KEYS = ("zone", "servers", "accuracy_ms", "poll_min_s", "poll_max_s")
KNOWN_KEYS = ("wifi_ssid", "wifi_pass", "country") + SERVICE_KEYS


def defaults():
    return {
        "wifi_ssid": None,
        "wifi_pass": "",
        "country": None,
        "zone": None,
        "servers": [],
        "accuracy_ms": DEFAULT_ACCURACY_MS,
        "poll_min_s": None,
        "poll_max_s": None,
    }


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _utf8_len(s):
    return len(s.encode("utf-8"))


def load(path=CONFIG_PATH, warn=print):
    """The settings dict: every key of defaults(), from the file where valid. Never raises.

    Read with sntp.store.read_json (the reader behind JsonStore): a user-written file needs
    neither JsonStore's save nor its fallback to the temporary file of an interrupted save.
    """
    doc, why = read_json(path)
    if doc is None:
        if why == NOT_FOUND:
            warn("config: {} not found: no Wi-Fi, no NTP servers".format(path))
        else:
            warn("config: {}: {}: no Wi-Fi, no NTP servers".format(path, why))
        return defaults()
    return check(doc, path, warn)


def check(doc, path=CONFIG_PATH, warn=print):
    """Validate a decoded config object: wrong keys and values fall back to their defaults."""
    out = defaults()
    bad = []  # "key (why)" for one line at the end

    ssid = doc.get("wifi_ssid")
    if ssid is not None:
        if isinstance(ssid, str) and 0 < _utf8_len(ssid) <= 32:
            out["wifi_ssid"] = ssid
        else:
            bad.append("wifi_ssid (a name of 1-32 bytes)")
    pw = doc.get("wifi_pass")
    if pw is not None:
        if isinstance(pw, str) and _utf8_len(pw) <= 64:
            out["wifi_pass"] = pw
        else:
            bad.append("wifi_pass (text of at most 64 bytes)")
    country = doc.get("country")
    if country is not None:
        if isinstance(country, str) and len(country) == 2 and country.isalpha():
            out["country"] = country.upper()
        else:
            bad.append("country (two letters)")
    zone = doc.get("zone")
    if zone is not None:
        if isinstance(zone, str):
            out["zone"] = zone  # the policy checks the label itself
        else:
            bad.append("zone (text)")
    servers = doc.get("servers")
    if servers is not None:
        if isinstance(servers, list) and all(isinstance(s, str) for s in servers):
            out["servers"] = servers
        else:
            bad.append("servers (a list of text)")
    acc = doc.get("accuracy_ms")
    if acc is not None:
        if _is_int(acc) and 1 <= acc <= MAX_ACCURACY_MS:
            out["accuracy_ms"] = acc
        else:
            bad.append("accuracy_ms (an integer 1-{})".format(MAX_ACCURACY_MS))
    for key in ("poll_min_s", "poll_max_s"):
        v = doc.get(key)
        if v is not None:
            if _is_int(v):
                out[key] = v
            else:
                bad.append("{} (an integer)".format(key))
    unknown = sorted(k for k in doc if k not in KNOWN_KEYS)
    said = []
    if bad:
        said.append("defaults for {}".format(", ".join(bad)))
    if unknown:
        said.append("unknown keys ignored: {}".format(", ".join(unknown)))
    if said:
        warn("config: {}: {}".format(path, "; ".join(said)))  # one line
    return out


def service_config(settings):
    """The part of the settings that sntp.aio.start() takes as its config."""
    out = {}
    for key in SERVICE_KEYS:
        v = settings.get(key)
        if v is not None and v != []:
            out[key] = v
    return out


def has_servers(settings):
    return bool(settings.get("zone")) or bool(settings.get("servers"))
