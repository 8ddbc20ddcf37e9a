# rp2: at boot, the time service beside the placeholder application (boards/common/app.py).
# Settings: /config.json on the board (boards/common/config.example.json).
import app
import board

app.run(board)
