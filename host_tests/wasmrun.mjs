// Runs the shared host tests (first line "# runs-on: both", as host_tests/mprun.py does) under
// the WebAssembly port of MicroPython: a 32-bit MicroPython (31-bit small ints, ticks wrapping
// at 2^30) like the ESP32 and RP2040 builds, run by Node from the pinned npm package that
// `make setup` installs (tools/wasm/package.json).
//
//   node host_tests/wasmrun.mjs [FILTER]        (from the repository root)
//   node host_tests/wasmrun.mjs --run FILE.py [ARG...]
//
// --run imports FILE.py (its folder on sys.path, sys.argv = [FILE.py, ARG...]) and calls its
// main(); a main() that is a generator runs one step per call into the runtime, so that the
// heap is collected between steps (gc.mem_alloc() read at the start of a step is what is
// resident). What it writes under results/ is copied back to the repository's results/.
//
// The firmware, the board glue and the tests are copied into the runtime's in-memory file
// system under /repo, with tools/wasm/socket.py (constants only: the port has no socket
// module). Each test is its own call into the runtime. A test listed in SKIP below is not
// run and its reason is printed; every other test runs. A test registered in fakes.STEPPED
// (a generator) runs one step per call, with separate calls that collect the heap between
// steps (inside one call this port's gc.collect() frees nothing that the call made).
// The last line: "micropython-wasm32: N passed, N failed".
import fs from "node:fs";
import path from "node:path";

const ROOT = process.cwd();
const RUNTIME =
  process.env.WASM_MICROPYTHON ||
  path.join(ROOT, ".venv/node/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
// the simulated-time scenarios keep every event of 30 days; WASM_HEAPSIZE: another size (bytes)
const HEAP = Number(process.env.WASM_HEAPSIZE) || 64 * 1024 * 1024;

const SOCKET = "needs a real UDP socket (the WebAssembly port has no socket module)";
const ASYNCIO =
  "needs asyncio.run() (the WebAssembly port's asyncio is driven by the host's event loop)";
const HEAP_MID_CALL =
  "reads the heap while one console session streams a line in, within one call into the " +
  "runtime, where this port's gc.collect() frees nothing (a session cannot pause mid-line)";
// module.test -> why it cannot run here. A listed test that is gone fails the run.
const SKIP = {
  "test_aio.test_a_silent_server_times_out_without_blocking_the_loop": ASYNCIO + "; " + SOCKET,
  "test_aio.test_start_runs_the_service_as_a_task_that_can_be_cancelled": ASYNCIO + "; " + SOCKET,
  "test_aio.test_the_async_service_applies_the_slew_in_its_own_loop": ASYNCIO,
  "test_aio.test_the_reply_comes_from_another_task_while_the_exchange_waits": ASYNCIO + "; " + SOCKET,
  "test_boards.test_background_writer_still_writes_when_the_event_loop_is_always_late": ASYNCIO,
  "test_boards.test_background_writer_writes_at_the_whole_second_holding_the_loop_briefly": ASYNCIO,
  "test_boards.test_board_with_credentials_joins_and_starts_the_service": ASYNCIO,
  "test_boards.test_board_settings_and_service_need_no_console_module": ASYNCIO,
  "test_console_board.test_a_line_without_the_console_module_says_so_once_and_the_board_goes_on": ASYNCIO,
  "test_boards.test_board_without_wifi_credentials_says_so_and_runs_its_application": ASYNCIO,
  "test_boards.test_hil_check_passes_against_a_fake_server": ASYNCIO,
  "test_boards.test_hil_drift_leaves_out_the_slew_the_service_has_pending": ASYNCIO,
  "test_boards.test_the_board_feeds_a_watchdog_every_second_when_configured": ASYNCIO,
  "test_boards.test_the_service_sets_a_one_second_rtc_within_5_ms": ASYNCIO,
  "test_console_board.test_boot_window_with_a_line_runs_the_console_until_exit": ASYNCIO,
  "test_console_board.test_boot_window_without_a_line_goes_on": ASYNCIO,
  "test_console_board.test_on_demand_the_console_opens_with_a_line_and_holds_the_output": ASYNCIO,
  "test_console_board.test_the_board_program_enters_the_console_at_boot_and_on_demand": ASYNCIO,
  "test_console_hostile.test_the_board_program_never_logs_the_passphrase": ASYNCIO,
  "test_console_hostile.test_huge_lines_are_answered_once_and_never_buffered": HEAP_MID_CALL,
  "test_dns.test_a_and_aaaa_go_out_together_with_different_ids_from_a_random_port": ASYNCIO + "; " + SOCKET,
  "test_dns.test_a_lookup_waits_for_its_answer_without_blocking_the_loop": ASYNCIO + "; " + SOCKET,
  "test_dns.test_a_silent_server_is_asked_again_then_the_lookup_fails_in_its_bound": ASYNCIO + "; " + SOCKET,
  "test_dns.test_an_answer_after_a_resend_still_counts": ASYNCIO + "; " + SOCKET,
  "test_dns.test_ip_addresses_and_unknown_servers_need_no_dns_server": SOCKET,
  "test_dns.test_the_blocking_service_with_the_resolver_waits_no_longer_than_its_bound": SOCKET,
  "test_dns.test_server_errors_end_the_lookup_at_once": ASYNCIO + "; " + SOCKET,
  "test_dns.test_spoofs_racing_the_server_are_dropped_and_counted": ASYNCIO + "; " + SOCKET,
  "test_net.test_a_datagram_longer_than_a_reply_arrives_cut_where_the_checks_see_it": SOCKET,
  "test_net.test_loopback_datagram_and_source_key": SOCKET,
  "test_net.test_random_ports_are_in_the_dynamic_range_and_differ": SOCKET,
  "test_net.test_recv_times_out_with_none_whatever_the_port_raises": SOCKET,
  "test_net.test_resolve_numeric_addresses_to_plain_keys": SOCKET,
  "test_wrap.test_the_asyncio_service_keeps_the_schedule_across_the_wrap": ASYNCIO,
};

const RUN = process.argv[2] === "--run" ? process.argv.slice(3) : null;
const filter = RUN ? "" : process.argv[2] || "";

if (!fs.existsSync(RUNTIME)) {
  console.log(`wasmrun: no WebAssembly MicroPython at ${RUNTIME}: run 'make setup'`);
  process.exit(2);
}
const { loadMicroPython } = await import(RUNTIME);
const mp = await loadMicroPython({
  heapsize: HEAP,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stdout.write(line + "\n"),
});

function copyTree(from, to) {
  mp.FS.mkdirTree(to);
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (e.name !== "__pycache__") copyTree(path.join(from, e.name), to + "/" + e.name);
    } else if (e.isFile()) {
      mp.FS.writeFile(to + "/" + e.name, fs.readFileSync(path.join(from, e.name)));
    }
  }
}
for (const d of ["firmware", "boards", "host_tests", "tools", "mpy"]) copyTree(path.join(ROOT, d), "/repo/" + d);
mp.FS.mkdirTree("/repo/build");
mp.FS.chdir("/repo");

// The value of one Python expression (runPython itself gives none back).
function py(expr) {
  mp.runPython("_wasm_r = " + expr);
  return mp.globals.get("_wasm_r");
}
mp.runPython(`
import sys, gc
sys.path[:0] = ["/repo/host_tests", "/repo/firmware", "/repo/boards/unix", "/repo/tools/wasm", "/repo/tools"]
def _wasm_import(m):
    try:
        __import__(m)
        return ""
    except Exception as e:
        sys.print_exception(e)
        return "FAIL"
def _wasm_step():
    try:
        next(_wasm_gen)
        return ""
    except StopIteration:
        return "END"
    except Exception as e:
        sys.print_exception(e)
        return "FAIL"
_wasm_gen = None
def _wasm_step_main(m):
    global _wasm_gen, _wasm_result
    _wasm_result = ""
    try:
        r = sys.modules[m].main()
    except Exception as e:
        sys.print_exception(e)
        _wasm_result = "FAIL"
        return
    _wasm_gen = r if type(r).__name__ == "generator" else None
def _wasm_call(m, n):
    global _wasm_gen
    try:
        gen_fn = getattr(sys.modules.get("fakes"), "STEPPED", {}).get(n)
        if gen_fn is not None:
            _wasm_gen = gen_fn()
            return "STEP"
        getattr(sys.modules[m], n)()
        return ""
    except Exception as e:
        sys.print_exception(e)
        return "FAIL"
`);
const bits = py("sys.maxsize");
if (bits !== 2 ** 31 - 1) {
  console.log("wasmrun: the runtime is not 32-bit: sys.maxsize is " + py("sys.maxsize"));
  process.exit(2);
}
console.log(`== MicroPython ${py("sys.version")} (WebAssembly, sys.maxsize == 2**31 - 1)`);

// Runs _wasm_gen to its end, a step per call, with a call between steps; "" or "FAIL".
function steps() {
  let status;
  while ((status = py("_wasm_step()")) === "") mp.runPython("pass");
  mp.runPython("_wasm_gen = None");
  return status === "FAIL" ? "FAIL" : "";
}

if (RUN) process.exit(runFile(RUN[0], RUN.slice(1)));

function runFile(file, args) {
  const dir = path.dirname(path.relative(ROOT, path.resolve(file)));
  const mod = path.basename(file, ".py");
  if (!mp.FS.analyzePath("/repo/" + dir).exists) copyTree(path.join(ROOT, dir), "/repo/" + dir);
  mp.FS.mkdirTree("/repo/results");
  mp.runPython(`sys.path.insert(0, "/repo/${dir}"); sys.argv[:] = ${JSON.stringify([file, ...args])}`);
  if (py(`_wasm_import(${JSON.stringify(mod)})`)) return 1;
  py(`_wasm_step_main(${JSON.stringify(mod)})`);
  const status = py("_wasm_gen is not None") ? steps() : py("_wasm_result");
  const out = mp.FS.readdir("/repo/results").filter((n) => n !== "." && n !== "..");
  if (out.length) fs.mkdirSync(path.join(ROOT, "results"), { recursive: true });
  for (const n of out) fs.writeFileSync(path.join(ROOT, "results", n), mp.FS.readFile("/repo/results/" + n));
  return status === "FAIL" ? 1 : 0;
}

const modules = fs
  .readdirSync(path.join(ROOT, "host_tests"))
  .filter((n) => /^test_.*\.py$/.test(n))
  .sort()
  .filter((n) => fs.readFileSync(path.join(ROOT, "host_tests", n), "utf8").split("\n")[0].trim() === "# runs-on: both")
  .map((n) => n.slice(0, -3));

let passed = 0,
  failed = 0;
const skipped = [];
const seen = new Set();
for (const m of modules) {
  if (py(`_wasm_import(${JSON.stringify(m)})`)) {
    failed++;
    console.log(`FAIL ${m} (import)`);
    continue;
  }
  const names = py(`"\\n".join(sorted(n for n in dir(sys.modules["${m}"]) if n.startswith("test_")))`);
  for (const n of names ? names.split("\n") : []) {
    const key = `${m}.${n}`;
    if (filter && !n.includes(filter)) continue;
    seen.add(key);
    if (key in SKIP) {
      skipped.push(key);
      console.log(`SKIP ${key}: ${SKIP[key]}`);
      continue;
    }
    let bad = py(`_wasm_call(${JSON.stringify(m)}, ${JSON.stringify(n)})`);
    if (bad === "STEP") bad = steps();
    if (bad) {
      failed++;
      console.log(`FAIL ${key}`);
    } else {
      passed++;
      console.log(`PASS ${key}`);
    }
  }
}
for (const key of Object.keys(SKIP)) {
  if (!filter && !seen.has(key)) {
    failed++;
    console.log(`FAIL ${key}: listed as skipped in host_tests/wasmrun.mjs but no such test`);
  }
}
console.log(`skipped ${skipped.length} (reasons above)`);
console.log(`micropython-wasm32: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
