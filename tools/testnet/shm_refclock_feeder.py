#!/usr/bin/env python3
"""Feed ntpd's SHM reference clock (unit 0, SysV key 0x4E545030) with the system time.

Run in the same IPC namespace as ntpd (the test network's own): ntpsec then serves as a real
stratum-1 server (refid GPS, valid reference timestamp) without any network upstream.
It only reads the clock. Exits after --lifetime seconds.
"""

import argparse
import ctypes
import ctypes.util
import time


class ShmTime(ctypes.Structure):
    _fields_ = [
        ("mode", ctypes.c_int),
        ("count", ctypes.c_int),
        ("clockTimeStampSec", ctypes.c_long),
        ("clockTimeStampUSec", ctypes.c_int),
        ("receiveTimeStampSec", ctypes.c_long),
        ("receiveTimeStampUSec", ctypes.c_int),
        ("leap", ctypes.c_int),
        ("precision", ctypes.c_int),
        ("nsamples", ctypes.c_int),
        ("valid", ctypes.c_int),
        ("clockTimeStampNSec", ctypes.c_uint),
        ("receiveTimeStampNSec", ctypes.c_uint),
        ("dummy", ctypes.c_int * 8),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=86400)
    a = ap.parse_args()
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    ipc_creat = 0o1000
    shmid = libc.shmget(0x4E545030 + a.unit, ctypes.sizeof(ShmTime), ipc_creat | 0o600)
    if shmid < 0:
        raise OSError(ctypes.get_errno(), "shmget")
    shm = ShmTime.from_address(libc.shmat(shmid, None, 0))
    end = time.monotonic() + a.lifetime
    while time.monotonic() < end:
        sec, nsec = divmod(time.time_ns(), 10**9)
        shm.valid = 0
        shm.mode = 1
        shm.count += 1
        shm.clockTimeStampSec = shm.receiveTimeStampSec = sec
        shm.clockTimeStampUSec = shm.receiveTimeStampUSec = nsec // 1000
        shm.clockTimeStampNSec = shm.receiveTimeStampNSec = nsec
        shm.leap = 0
        shm.precision = -20
        shm.nsamples = 3
        shm.count += 1
        shm.valid = 1
        time.sleep(0.25)


if __name__ == "__main__":
    main()
