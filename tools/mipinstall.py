#!/usr/bin/env python3
"""mipinstall -- install a mip package file into a folder, from this checkout, offline.

    tools/mipinstall.py [--repo OWNER/REPO] PACKAGE TARGET

PACKAGE is what `mpremote mip install` takes: a package file (`package.json`,
`package-console.json`, a folder holding a package.json) or `github:OWNER/REPO[/path]`.
TARGET is the folder that stands for the board's `lib` (created if missing).

The package file is read exactly as mip reads it (micropython-lib's mip and mpremote's
port of it, both MIT; behaviour described here, not their code):
  - "urls": [[dest, src], ...]: src is copied to TARGET/dest. A src that starts with
    http://, https://, github:, gitlab: or codeberg: is a full address; any other src is
    relative to the package file's folder (mpremote: os.path.dirname of a local file; mip:
    the address up to its last "/").
  - "deps": [[package, version], ...]: each is installed the same way, into the same TARGET
    (a github: address without .json/.py means its folder's package.json).
  - "hashes" are files of the micropython-lib index: there is no index offline, so they are
    reported and skipped. "version" is not read by mip.
  - a github: address names a branch by `@version` in mip; the checkout is what it is, so
    the branch is not looked at.
The network is never used: `github:OWNER/REPO/path` is this checkout's `path` when OWNER/REPO
is given with --repo (any number of times); any other address, and a package name meant for
the index, is an error that says so. Nothing is written outside TARGET.

Exit status 0 and one line per file ("Installing: TARGET/dest"), or 1 and one line saying why.
"""

import argparse
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
URL_PREFIXES = ("http://", "https://", "codeberg:", "github:", "gitlab:")


class MipError(Exception):
    """The package cannot be installed offline, or is malformed: one line says why."""


def _local(url, repos, root):
    """A mip address or path -> a file of this machine (github:OWNER/REPO/p -> root/p)."""
    if url.startswith("github:"):
        parts = url[len("github:") :].split("/")
        if len(parts) >= 2 and "/".join(parts[:2]) in repos:
            return os.path.join(root, *parts[2:])
    if url.startswith(URL_PREFIXES):
        raise MipError("{}: not in this checkout (mip would download it)".format(url))
    return url


def _copy(src, target, dest, out):
    if os.path.isabs(dest) or ".." in dest.replace("\\", "/").split("/"):
        raise MipError("{}: the destination leaves the target folder".format(dest))
    if not os.path.isfile(src):
        raise MipError("{}: no such file (for {})".format(src, dest))
    path = os.path.join(target, *dest.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(src, path)
    out("Installing: {}/{}".format(target, dest))
    return dest


def _pairs(doc, key, where):
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in items
    ):
        raise MipError("{}: {!r} must be a list of [string, string] pairs".format(where, key))
    return items


def install_json(url, target, repos=(), root=ROOT, out=print):
    """Install the package file at url (a path, or a github: address) into target.
    Returns the destinations written, in order (deps after the package's own files)."""
    path = _local(url, repos, root)
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise MipError("{}: cannot read the package file: {}".format(url, e)) from None
    if not isinstance(doc, dict):
        raise MipError("{}: not a JSON object".format(url))
    # mip: a downloaded file's base is the address up to its last "/"; mpremote: a local
    # file's base is its folder (no base: src is taken as it is, from the current folder).
    if url.startswith(URL_PREFIXES):
        base = url.rpartition("/")[0]
    else:
        base = os.path.dirname(url)
    for dest, _ in _pairs(doc, "hashes", url):
        out(
            "Skipped: {}/{} (a file of the package index, which is not used offline)".format(
                target, dest
            )
        )
    done = []
    for dest, src in _pairs(doc, "urls", url):
        if base and not src.startswith(URL_PREFIXES):
            src = base + "/" + src  # relative to the package file
        done.append(_copy(_local(src, repos, root), target, dest, out))
    for dep, _version in _pairs(doc, "deps", url):
        done += install(dep, target, repos, root, out)
    return done


def install(package, target, repos=(), root=ROOT, out=print):
    """Install package (what `mip install` takes) into target, as mip would. Returns the
    destinations written. Raises MipError, with one line, when it cannot."""
    if package.startswith(URL_PREFIXES):
        if package.endswith(".py") or package.endswith(".mpy"):
            name = package.rsplit("/", 1)[-1]
            return [_copy(_local(package, repos, root), target, name, out)]
        if not package.endswith(".json"):
            package = package.rstrip("/") + "/package.json"
        return install_json(package, target, repos, root, out)
    if os.path.isdir(package):
        package = os.path.join(package, "package.json")
    if not package.endswith(".json"):
        raise MipError(
            "{}: a package of the micropython-lib index (mip would download it)".format(package)
        )
    return install_json(package, target, repos, root, out)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Install a mip package file into a folder from this checkout (offline).",
    )
    ap.add_argument("package", help="package.json, package-X.json, or github:OWNER/REPO[/path]")
    ap.add_argument("target", help="the folder standing for the board's lib")
    ap.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="OWNER/REPO",
        help="github:OWNER/REPO/... addresses are files of this checkout",
    )
    a = ap.parse_args(argv)
    try:
        install(a.package, a.target, tuple(a.repo))
    except MipError as e:
        print("mipinstall: {}".format(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
