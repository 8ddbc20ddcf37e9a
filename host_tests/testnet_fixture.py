# The real-server test network (tools/testnet) for pytest: started once, torn down after.
#
# pytest stays in the host's namespaces; every command that must see the test network (the
# client under test, nft, probes) runs through `nsenter` into the network's namespaces. The
# network's files (dnsmasq's hosts and query log) are reached through /proc/PID/root, its
# mount namespace seen from the host.
#
# When the network cannot run here (not root, packages not installable, no namespaces), the
# tests are skipped with one line saying why; with CI=true the run fails instead, so CI can
# never pass without having run them.
import json
import os
import re
import select
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTNET = os.path.join(ROOT, "tools", "testnet", "testnet.sh")
SNTP = os.path.join(ROOT, "tools", "sntp")
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython")
READY_TIMEOUT_S = 180  # includes a first install (about 3 s with a warm apt, more without)


class Unavailable(Exception):
    """The test network cannot run on this machine; args[0] says why, in one line."""


class TestNet:
    __test__ = False  # not a test class

    def __init__(self):
        t0 = time.monotonic()
        self.host_addrs_before = _host_lo_addrs()
        self.proc = subprocess.Popen(
            [TESTNET, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = ""
        while not line.startswith("READY "):
            left = t0 + READY_TIMEOUT_S - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not r:
                self.close()
                raise RuntimeError("test network not ready in {} s".format(READY_TIMEOUT_S))
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read()
                rc = self.proc.wait()
                if rc == 3:  # testnet.sh: cannot run here; its last line says why
                    lines = err.strip().splitlines()
                    raise Unavailable(lines[-1] if lines else "testnet.sh exited 3")
                raise RuntimeError("tools/testnet/testnet.sh exited {}:\n{}".format(rc, err))
        self.run_dir = line.split(None, 1)[1].strip()
        # the host PID of the namespaces' PID 1 (env.sh), the only child of unshare
        with open("/proc/{0}/task/{0}/children".format(self.proc.pid)) as f:
            self.pid = int(f.read().split()[0])
        self.pidns = os.readlink("/proc/{}/ns/pid".format(self.pid))
        self.startup_s = time.monotonic() - t0

    # ---- running things inside ------------------------------------------------------------
    def argv(self, *cmd):
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "-i", "-p", "--"] + [
            str(c) for c in cmd
        ]

    def run(self, *cmd, timeout=60, check=False):
        return subprocess.run(
            self.argv(*cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            env=self.env(),
        )

    def popen(self, *cmd):
        return subprocess.Popen(
            self.argv(*cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def env(self):
        return dict(os.environ, MICROPYTHON=MICROPYTHON)

    def sntp(self, *args, timeout=60):
        """tools/sntp under the unix-port MicroPython, inside the network."""
        return self.run(SNTP, *args, timeout=timeout)

    def sntp_json(self, *args, timeout=60):
        """(exit status, the one JSON object printed, stderr)."""
        p = self.sntp(*args, "--json", timeout=timeout)
        lines = p.stdout.strip().splitlines()
        assert len(lines) == 1, (p.stdout, p.stderr)
        return p.returncode, json.loads(lines[0]), p.stderr

    def python(self, code, *args, timeout=60):
        """A CPython snippet inside the network (probes that must not use the client's code)."""
        return self.run("python3", "-c", code, *args, timeout=timeout, check=True).stdout

    # ---- what the network saw -------------------------------------------------------------
    def counters(self):
        """{'ntp_127_0_0_2': requests sent to 127.0.0.2:123, ..., 'dns_127_0_0_1': queries}."""
        out = self.run("nft", "-j", "list", "counters", "table", "ip", "testnet", check=True)
        return {
            o["counter"]["name"]: o["counter"]["packets"]
            for o in json.loads(out.stdout)["nftables"]
            if "counter" in o
        }

    def path(self, rel):
        """A file of the network's tmpfs, seen from the host."""
        return "/proc/{}/root{}/{}".format(self.pid, self.run_dir, rel)

    def dns_log(self):
        with open(self.path("dnsmasq/dnsmasq.log")) as f:
            return f.read()

    def dns_queries(self, name, qtype="A", log=None):
        """How many queries for NAME (type A by default) dnsmasq has logged."""
        text = self.dns_log() if log is None else log
        return len(re.findall(r" query\[{}\] {} from ".format(qtype, re.escape(name)), text))

    def set_hosts(self, lines):
        """Replace dnsmasq's A records (hosts-format lines) and make it re-read them."""
        with open(self.path("dnsmasq/hosts"), "w") as f:
            f.write("".join(line + "\n" for line in lines))
        self.run(
            "sh", "-c", "kill -HUP $(cat {}/dnsmasq/dnsmasq.pid)".format(self.run_dir), check=True
        )

    def hosts(self):
        with open(self.path("dnsmasq/hosts")) as f:
            return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]

    # ---- teardown ---------------------------------------------------------------------------
    def ns_pids(self):
        """Host PIDs of every process in the network's PID namespace."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.readlink("/proc/{}/ns/pid".format(d)) == self.pidns:
                        out.append(int(d))
                except OSError:
                    pass
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # env.sh stops on EOF; its PID namespace dies with it
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # unshare --kill-child: the kernel kills the namespace
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def leftovers(self, pids):
        """What is still on the host after close(): should be nothing."""
        left = []
        for p in pids:
            try:
                if os.readlink("/proc/{}/ns/pid".format(p)) == self.pidns:
                    left.append("process {}".format(p))
            except OSError:
                pass
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                source = line.split(" - ", 1)[1].split()[1:2]
                if fields[4] == self.run_dir or source == ["testnet"]:
                    left.append("mount " + line.strip())
        extra = _host_lo_addrs() - self.host_addrs_before
        left += ["address {}".format(a) for a in sorted(extra)]
        return left


def _host_lo_addrs():
    try:
        out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    except FileNotFoundError:  # no iproute2 yet: install.sh brings it
        return set()
    return set(re.findall(r"inet (127\.\d+\.\d+\.\d+)", out))


def unavailable(request, reason):
    """Skip with one line saying why; under CI=true, fail instead."""
    line = reason if reason.startswith("testnet") else "testnet: " + reason
    if os.environ.get("CI") == "true":
        pytest.fail(line + " (CI=true: the real-server tests must run)", pytrace=False)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capman is not None:
        with capman.global_and_fixture_disabled():
            reporter.write_line("\n" + line + ": the real-server tests are skipped")
    pytest.skip(line)


@pytest.fixture(scope="session")
def testnet(request):
    """The running test network (TestNet). Torn down at the end; nothing is left on the host."""
    if os.geteuid() != 0:
        unavailable(request, "not root (needs namespaces, mounts and apt)")
    try:
        net = TestNet()
    except Unavailable as e:
        unavailable(request, e.args[0])
    try:
        yield net
    finally:
        pids = net.ns_pids()
        net.close()
        left = net.leftovers(pids)
        assert not left, "the test network left behind: {}".format(left)
