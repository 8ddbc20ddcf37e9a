# The board's boot program, for ESP32 and Pico W alike (make deploy copies it to :main.py):
# the time service beside the placeholder application (app.py; board.py picks the RTC).
# Settings: /config.json on the board (boards/common/config.example.json).
import app
import board

app.run(board)
