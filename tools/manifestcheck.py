#!/usr/bin/env python3
"""Check freeze manifests the way MicroPython's manifest tool reads them, without it.

The project's own evaluator of the manifest language (MicroPython's docs/reference/
manifest.rst): metadata(), include(), require(), add_library(), package(), module() and
options. It rejects what MicroPython's tools/manifestfile.py rejects, and a little more:

- a second metadata() in one package context (include() runs a manifest in the including
  one's context; only require() opens a new one): "Duplicate call to metadata()"
- a required package whose manifest does not start with metadata() (stricter: the tool asks
  it only in compile mode)
- a file, an included manifest or a required package that is not there; an unknown library
- the same frozen path from two different files (stricter: the build would freeze both)

  tools/manifestcheck.py MANIFEST.py [--set NAME=VALUE ...]

prints each frozen path and its source, or one line saying why the manifest is refused
(exit 1). docs/freezing.md says how the same manifests were checked with the real tool.
"""

import os
import sys


class ManifestError(Exception):
    pass


class Package:
    """One metadata() context: the top level, or a package opened by require()."""

    def __init__(self, name):
        self.name = name  # the required name, or "(top level)"
        self.metadata = None  # the kwargs of its metadata() call, None before it
        self.calls = 0  # calls made in this context so far (metadata() must come first)


class Options:
    """The `options` a manifest sees: the keyword arguments of its include()/require()."""

    def __init__(self, kwargs):
        self._kwargs = kwargs
        self._defaults = {}

    def defaults(self, **kwargs):
        self._defaults = kwargs

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._kwargs.get(name, self._defaults.get(name))


class Manifest:
    def __init__(self, path_vars=None):
        self.path_vars = path_vars or {}  # $(NAME) -> path
        self.files = {}  # frozen path -> source file
        self.packages = []  # every Package context, the top level first
        self.libraries = {}  # add_library() name -> folder
        self.seen = set()  # manifests already run (each runs once, as in the tool)
        self.stack = [self._open("(top level)")]

    def _open(self, name):
        p = Package(name)
        self.packages.append(p)
        return p

    def _path(self, path):
        for name, value in self.path_vars.items():
            path = path.replace("$({})".format(name), value)
        return os.path.abspath(path)

    def _call(self):
        self.stack[-1].calls += 1

    # The manifest language.
    def metadata(self, **kwargs):
        ctx = self.stack[-1]
        if ctx.metadata is not None:
            raise ManifestError("Duplicate call to metadata()")
        if ctx.calls and len(self.stack) > 1:
            raise ManifestError("metadata() must be the first command in a package")
        ctx.metadata = kwargs
        self._call()

    def include(self, path, **kwargs):
        self._call()
        self._run(self._path(path), kwargs)

    def add_library(self, name, path, prepend=False):
        self._call()
        self.libraries[name] = self._path(path)

    def require(self, name, library=None, **kwargs):
        self._call()
        folders = [self.libraries[library]] if library in self.libraries else []
        if library is not None and not folders:
            raise ManifestError("Unknown library {!r} for require({!r})".format(library, name))
        if library is None:
            folders = list(self.libraries.values())
        for folder in folders:
            for root, _, names in os.walk(folder):
                if os.path.basename(root) == name and "manifest.py" in names:
                    self._run(os.path.join(root, "manifest.py"), kwargs, package=name)
                    return
        raise ManifestError("Package {!r} not found".format(name))

    def package(self, name, files=None, base_path=".", opt=None):
        self._call()
        base = self._path(base_path)
        if files is None:
            top = os.path.join(base, name)
            if not os.path.isdir(top):
                raise ManifestError("Cannot find package folder {}".format(top))
            files = []
            for root, _, names in os.walk(top):
                rel = os.path.relpath(root, top)
                files += [
                    os.path.normpath(os.path.join(rel, n)) for n in names if n.endswith(".py")
                ]
        for f in files:
            self._add(os.path.join(name, f), os.path.join(base, name, f))

    def module(self, path, base_path=".", opt=None):
        self._call()
        if not path.endswith(".py"):
            raise ManifestError("module must be .py file")
        self._add(path, os.path.join(self._path(base_path), path))

    def _add(self, target, source):
        if not os.path.isfile(source):
            raise ManifestError("Cannot stat {}".format(source))
        old = self.files.get(target)
        if old is not None and old != source:
            raise ManifestError("{} frozen twice: {} and {}".format(target, old, source))
        self.files[target] = source

    def _run(self, path, kwargs, package=None):
        if os.path.isdir(path):
            path = os.path.join(path, "manifest.py")
        if path in self.seen:
            return
        self.seen.add(path)
        if package is not None:
            self.stack.append(self._open(package))
        try:
            with open(path) as f:
                code = f.read()
        except OSError as e:
            raise ManifestError("Cannot read manifest {}: {}".format(path, e.strerror)) from None
        api = {
            "metadata": self.metadata,
            "include": self.include,
            "require": self.require,
            "add_library": self.add_library,
            "package": self.package,
            "module": self.module,
            "options": Options(kwargs),
        }
        cwd = os.getcwd()
        os.chdir(os.path.dirname(path))
        try:
            exec(compile(code, path, "exec"), api)
            if package is not None and self.stack[-1].metadata is None:
                raise ManifestError("metadata() missing in package {}".format(package))
        except ManifestError as e:
            raise ManifestError("{}: {}".format(path, e)) from None
        except Exception as e:  # the manifest's own error (raise, a typo): one line
            raise ManifestError("{}: {}: {}".format(path, type(e).__name__, e)) from None
        finally:
            os.chdir(cwd)
        if package is not None:
            self.stack.pop()


def check(path, **options):
    """Run the manifest at path (its include()/require()s too): a Manifest, or ManifestError."""
    m = Manifest()
    m._run(os.path.abspath(path), options)
    return m


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    options = {}
    rest = argv[1:]
    while rest:
        if rest[0] != "--set" or len(rest) < 2 or "=" not in rest[1]:
            print("manifestcheck: expected --set NAME=VALUE, got {!r}".format(rest[0]))
            return 2
        k, v = rest[1].split("=", 1)
        options[k] = v
        rest = rest[2:]
    try:
        m = check(argv[0], **options)
    except ManifestError as e:
        print("manifestcheck: refused: {}".format(e), file=sys.stderr)
        return 1
    for target in sorted(m.files):
        print("{}  {}".format(target, m.files[target]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
