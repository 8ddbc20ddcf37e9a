# The board program (boards/common: one board.py for both boards, sntp.rtc picks the RTC by
# port; main.py stays on the filesystem, copied by `make deploy` or mpremote), frozen with
# what it imports: the sync core and sntp-console (its settings validate /config.json with
# sntp.config). The same files for both boards: board= may name it (esp32 or rp2; another
# name is refused, as the program knows no other RTC), or be left out:
#   require("sntp-board", library="sntp", board="esp32")   # or board="rp2" (Pico W)
# hil.py (the hardware-in-the-loop check) is left out: make hil copies it when it runs.
# ruff: noqa: F821 - metadata(), options, require() and module() are given by MicroPython's
# manifest tool
metadata(
    description="SNTP client for MicroPython fleets: board program", version="0.1.0", license="MIT"
)

options.defaults(board=None)
if options.board not in (None, "esp32", "rp2"):
    raise ValueError('sntp-board: board="esp32", board="rp2" or none, not ' + repr(options.board))
require("sntp", library="sntp")
require("sntp-console", library="sntp")
for name in ("app.py", "board.py", "serialconsole.py", "settings.py", "wifi.py"):
    module(name, base_path="../../boards/common")
