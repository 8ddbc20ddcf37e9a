# The device configuration file: every key checked against sntp.schema's table (the one
# source of each key's kind, default and bounds), and the file's load and save. The board
# program reads its settings with it at boot (boards/common/settings.py); the console
# (sntp.console, the optional package) adds the help text and the commands.
#
# Stored as a small JSON object on the board's flash (/config.json; the unix board: a file
# named on the command line). Loading never fails: a missing file is the defaults, a broken
# file or field falls back to the default for that field, with one line saying so.
# Saving goes through store.JsonStore: a temporary file, then a rename over the old one, so a
# power cut at any byte leaves the old or the new configuration, never a broken one.
from .schema import KEYS, KIND, MAX_TEXT, SCHEMA, parse_server, server_refusal, zone_label
from .store import NOT_FOUND, OUT_OF_MEMORY, JsonStore, read_saved, retry_short

SECRET_KEYS = ("wifi_pass",)
LOG_LEVELS = ("error", "warn", "info", "debug")
MASK = "********"


def defaults():
    out = {}
    for k in KEYS:
        d = SCHEMA[k][1]
        out[k] = list(d) if isinstance(d, list) else d
    return out


def _printable(text):
    for b in text.encode():  # bytes: no string made per character (schema._only)
        if b < 0x20 or b == 0x7F:
            return False
    return True


def check(key, value):
    """A JSON value for key -> the valid value. Raises ValueError(reason) otherwise."""
    if key not in SCHEMA:
        raise ValueError("unknown key {}".format(key))
    kind, default, lo, hi = SCHEMA[key]
    if value is None:
        if default is None:
            return None
        raise ValueError("{} cannot be empty".format(key))
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("{} must be a whole number".format(key))
        if not lo <= value <= hi:
            raise ValueError("{} must be {} to {}".format(key, lo, hi))
        return value
    if kind == "names":
        if not isinstance(value, list):
            raise ValueError("servers must be a list of names")
        if len(value) > hi:
            raise ValueError("at most {} servers (rule 17)".format(hi))
        for name in value:
            if not isinstance(name, str):
                raise ValueError("a server must be a name")
            why = server_refusal(parse_server(name)[0])  # ValueError with a reason
            if why:
                raise ValueError(why)
        return list(value)
    if not isinstance(value, str):
        raise ValueError("{} must be text".format(key))
    n = len(value.encode())
    if n > MAX_TEXT or not _printable(value):
        raise ValueError("{}: at most {} bytes of printable text".format(key, MAX_TEXT))
    if kind == "label":
        return zone_label(value)
    if kind == "host":
        parse_server(value)
        return value
    if kind == "text" and not lo <= n <= hi:
        raise ValueError("{} must be {} to {} bytes".format(key, lo, hi))
    if kind == "secret" and value and not lo <= len(value) <= hi:
        raise ValueError("{} must be {} to {} characters, or empty".format(key, lo, hi))
    if kind == "choice" and value not in LOG_LEVELS:
        raise ValueError("{} must be one of {}".format(key, ", ".join(LOG_LEVELS)))
    if kind == "tz":
        why = None
        try:
            from .tz import parse  # the optional package, only when a rule is set

            parse(value)
        except ImportError:
            why = "needs the sntp.tz package (package-tz.json)"
        except ValueError as e:
            why = e.args[0]
        if why is not None:
            raise ValueError("tz: " + why)
    if kind == "country":
        if value and not (n == hi and all("a" <= c.lower() <= "z" for c in value)):
            raise ValueError("country must be {} letters, or empty".format(hi))
        return value.upper()
    return value


def hide(text, secrets):
    """text with each secret in it replaced by MASK: as typed, and as repr() escapes it (an
    error message quoting a value with {!r} turns a backslash or a quote into an escape)."""
    for s in secrets:
        if s:
            for form in (s, repr(s)[1:-1]):
                if form in text:
                    text = text.replace(form, MASK)
    return text


def validate(doc):
    """A loaded object -> (values, warnings): each bad or unknown field dropped, with a reason.
    A passphrase pasted into another field never shows in that field's warning."""
    values = defaults()
    warnings = []
    if not isinstance(doc, dict):
        if doc is not None:
            warnings.append("configuration is not a JSON object: defaults used")
        return values, warnings
    for k, v in doc.items():
        if k == "kind" and v == KIND:
            continue
        if k not in SCHEMA:
            warnings.append("{}: unknown key, ignored".format(k))
            continue
        try:
            values[k] = check(k, v)
        except ValueError as e:
            warnings.append("{}: {}; default used".format(k, e.args[0]))
    secrets = []
    for k in SECRET_KEYS:  # the file's, valid or not (a short one too: it is still meant)
        v = doc.get(k)
        if isinstance(v, str) and v:
            secrets.append(v)
    return values, [hide(w, secrets) for w in warnings]


def parse_value(key, text):
    """The console's `set KEY VALUE` text -> the valid value, or ValueError(reason)."""
    if key not in SCHEMA:
        raise ValueError("unknown key {}".format(key))
    kind, _, lo, hi = SCHEMA[key]
    if kind == "int":
        t = text.strip()
        d = t[1:] if t[:1] == "-" else t  # a negative number: the range below says why not
        if not d or not all("0" <= c <= "9" for c in d):  # ASCII only, as on the boards
            raise ValueError("{} must be a whole number, {} to {}".format(key, lo, hi))
        return check(key, int(t))
    if kind == "names":
        names = [n.strip() for n in text.split(",") if n.strip()]
        return check(key, names)
    return check(key, text)


def load(path, warn=print):
    """The configuration in path, validated; every problem is one warn() line."""
    doc, why = read_saved(path)  # PATH, else the PATH.tmp of a save cut before its rename
    why = None if why == NOT_FOUND else why  # not worth a line: the defaults
    checked, short = retry_short(validate, doc)  # checking needs memory too
    if short:  # read, but not checked: as if it could not be read
        checked, why = (defaults(), []), short
    values, warnings = checked
    if why == OUT_OF_MEMORY:  # the file may be good: the defaults, and nothing saved over it
        warnings.insert(0, "{}: {}: the defaults are used until it is read".format(path, why))
    elif why:  # the configuration's words, not the state file's
        warnings.insert(0, "{}: {}, ignored: the defaults are used".format(path, why))
    for w in warnings:
        warn("config: " + w)
    return values


def save(path, values, warn=print):
    """Save atomically (temporary file, then rename). True when it reached the disk."""
    out = {"kind": KIND}
    for k in KEYS:
        if values.get(k) != SCHEMA[k][1]:
            out[k] = values[k]
    return JsonStore(path, warn).save(out)


def text(key, value):
    """How get/show print a value: secrets masked, lists comma-separated, none as ''."""
    if key in SECRET_KEYS:
        return MASK if value else ""
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    return str(value)
