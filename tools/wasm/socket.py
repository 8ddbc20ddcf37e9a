# A stand-in for the socket module, which the WebAssembly port of MicroPython does not have:
# the constants the firmware and tests name at import time, and no way to open a socket.
# Only host_tests/wasmrun.mjs puts it on the path; tests needing real sockets are skipped.
AF_INET = 2
AF_INET6 = 10
SOCK_DGRAM = 2
SOL_SOCKET = 1
SO_REUSEADDR = 4


def _none(*args):
    raise OSError(95)  # EOPNOTSUPP


socket = getaddrinfo = _none
