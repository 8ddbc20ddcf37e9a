# Runs the shared host tests under the unix-port MicroPython (pytest does not run there).
# Every host_tests/test_*.py whose first line is "# runs-on: both" is imported and each
# test_* function called; failures print their traceback. The last line is the count.
import os
import sys

HERE = sys.argv[1] if len(sys.argv) > 1 else "host_tests"
sys.path.insert(0, HERE)


def shared_modules():
    names = []
    for name in sorted(os.listdir(HERE)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(HERE + "/" + name) as f:
                if f.readline().strip() == "# runs-on: both":
                    names.append(name[:-3])
    return names


def main():
    passed = failed = 0
    only = sys.argv[2] if len(sys.argv) > 2 else None
    for modname in shared_modules():
        try:
            mod = __import__(modname)
        except Exception as e:  # noqa: BLE001 - a module that cannot load is a failure
            failed += 1
            print("FAIL {} (import)".format(modname))
            sys.print_exception(e)  # type: ignore[attr-defined]
            continue
        for name in sorted(dir(mod)):
            if not name.startswith("test_") or (only and only not in name):
                continue
            fn = getattr(mod, name)
            try:
                fn()
                passed += 1
                print("PASS {}.{}".format(modname, name))
            except Exception as e:  # noqa: BLE001 - report every failure, keep going
                failed += 1
                print("FAIL {}.{}".format(modname, name))
                sys.print_exception(e)  # type: ignore[attr-defined]
    print("micropython: {} passed, {} failed".format(passed, failed))
    sys.exit(1 if failed else 0)


main()
