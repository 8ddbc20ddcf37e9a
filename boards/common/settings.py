# The board's stored configuration: sntp.config's schema, one JSON object in /config.json.
#
#   {"wifi_ssid": "factory-net", "wifi_pass": "...", "zone": "acme", "accuracy_ms": 100}
#
# The keys, their types, defaults and rules are sntp.config's (firmware/sntp/config.py; the
# console's `help` prints them): zone, servers, factory_server, wifi_ssid, wifi_pass,
# accuracy_ms, poll_min_s, poll_max_s, log_level, country. Write the file with the console
# (tools/provision, or set/save by hand), or copy one (make deploy CONFIG=...): a save by the
# console is atomic (a temporary file, then a rename), so a power cut leaves the old or the
# new configuration.
# Loading never fails: a missing or broken file is the defaults, a wrong or unknown key
# falls back to its default; either way one line on the console says what was dropped.
# Without wifi_ssid the board has no Wi-Fi and no time service; the application still runs.
# Never commit a real passphrase.
from sntp.store import NOT_FOUND, read_json

try:
    from sntp import config
except ImportError:
    # sntp frozen without its sntp-console extra: a frozen package's submodules are looked up
    # only in the firmware, so a /lib/sntp/config.mpy is never found (docs/freezing.md)
    config = None  # type: ignore[assignment]

CONFIG_PATH = "/config.json"
NO_CONFIG = "board: sntp.config is not in this firmware: freeze sntp-console with sntp"

# Keys handed to the time service (sntp.aio.AsyncService's config dict).
SERVICE_KEYS = ("zone", "servers", "factory_server", "accuracy_ms", "poll_min_s", "poll_max_s")


def defaults():
    return config.defaults()


def load(path=CONFIG_PATH, warn=print):
    """The settings: every key of sntp.config, from the file where valid. Never raises.
    None, with one line saying which package to freeze, when sntp.config is missing."""
    if config is None:
        warn(NO_CONFIG + " (no time service, no console)")
        return None
    doc, why = read_json(path)
    if doc is None and why == NOT_FOUND:
        # a console save cut between removing the old file and the rename (FAT): the
        # temporary file is complete by then (sntp.store)
        doc, _ = read_json(path + ".tmp")
    if doc is None:
        if why == NOT_FOUND:
            warn("config: {} not found: no Wi-Fi, no NTP servers".format(path))
        else:
            warn("config: {}: {}: no Wi-Fi, no NTP servers".format(path, why))
        return defaults()
    return check(doc, path, warn)


def check(doc, path=CONFIG_PATH, warn=print):
    """Validate a decoded config object: wrong keys and values fall back to their defaults,
    with one line saying which."""
    values, warnings = config.validate(doc)
    if warnings:
        warn("config: {}: {}".format(path, "; ".join(warnings)))
    return values


def service_config(settings):
    """The part of the settings that the time service takes as its config."""
    out = {}
    for key in SERVICE_KEYS:
        v = settings.get(key)
        if v is not None and v != []:
            out[key] = v
    return out


def has_servers(settings):
    return bool(settings.get("zone") or settings.get("servers") or settings.get("factory_server"))
