# The board's stored configuration: sntp.schema's keys, one JSON object in /config.json.
#
#   {"wifi_ssid": "factory-net", "wifi_pass": "...", "zone": "acme", "accuracy_ms": 100}
#
# The keys, their types, defaults and bounds are sntp.schema's (firmware/sntp/schema.py; the
# console's `help` prints them); the service takes the settings whole (schema.Config reads
# its keys). Write the file with the console
# (tools/provision, or set/save by hand), or copy one (make deploy CONFIG=...): a save by the
# console is atomic (a temporary file, then a rename), so a power cut leaves the old or the
# new configuration.
# Loading never fails: a missing or broken file is the defaults, a wrong or unknown key
# falls back to its default; either way one line on the console says what was dropped. A
# file that could not be read for want of memory is the defaults too, with a line saying
# "out of memory" (sntp.store.OUT_OF_MEMORY): nothing saves them over it (the console reads
# the file itself and refuses to save over one it could not read).
# Without wifi_ssid the board has no Wi-Fi and no time service; the application still runs.
# Never commit a real passphrase.
from sntp import config
from sntp.store import NOT_FOUND, OUT_OF_MEMORY, read_saved, retry_short

CONFIG_PATH = "/config.json"


def defaults():
    return config.defaults()


def load(path=CONFIG_PATH, warn=print):
    """The settings: every key of sntp.schema, checked by sntp.config (the core's), from the
    file where valid. Never raises."""
    # PATH, else the PATH.tmp of a console save cut between removing the old file and the
    # rename (FAT): the temporary file is complete by then (sntp.store.read_saved)
    doc, why = read_saved(path)
    if doc is not None:  # checking needs memory too: read but not checked is not read
        values, why = retry_short(lambda d: check(d, path, warn), doc)
        if values is not None:
            return values
    if why == NOT_FOUND:
        warn("config: {} not found: no Wi-Fi, no NTP servers".format(path))
    elif why == OUT_OF_MEMORY:
        # the file may be good: this line says OUT_OF_MEMORY, as sntp.config.load's does,
        # and the console (which reads the file itself) refuses to save over it
        warn("config: {}: {}: no Wi-Fi, no NTP servers until it is read".format(path, why))
    else:
        warn("config: {}: {}: no Wi-Fi, no NTP servers".format(path, why))
    return defaults()


def check(doc, path=CONFIG_PATH, warn=print):
    """Validate a decoded config object: wrong keys and values fall back to their defaults,
    with one line saying which."""
    values, warnings = config.validate(doc)
    if warnings:
        warn("config: {}: {}".format(path, "; ".join(warnings)))
    return values


def has_servers(settings):
    return bool(settings.get("zone") or settings.get("servers") or settings.get("factory_server"))
