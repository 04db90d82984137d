#!/usr/bin/env python3
"""Peer client for benches/benches/edge.rs: downloads WINDOWS windows of 1 MiB
from URL with CONCURRENCY threads (one keep-alive connection each, Range
requests), counts bytes equal to IMM in each window with numpy, and prints one
JSON line: {"windows", "bytes", "elapsed_s", "result"}."""
import http.client
import json
import sys
import threading
import time
import urllib.parse

import numpy as np

WINDOW = 1 << 20


def main():
    url, windows, concurrency, imm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    u = urllib.parse.urlsplit(url)
    lock = threading.Lock()
    state = {"next": 0, "result": 0, "bytes": 0, "error": None}

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        buf = bytearray(WINDOW)
        view = memoryview(buf)
        local, got = 0, 0
        try:
            while True:
                with lock:
                    w = state["next"]
                    state["next"] += 1
                if w >= windows:
                    break
                start = w * WINDOW
                conn.request("GET", u.path, headers={"Range": f"bytes={start}-{start + WINDOW - 1}"})
                resp = conn.getresponse()
                if resp.status != 206:
                    raise RuntimeError(f"window {w}: status {resp.status}")
                n = 0
                while n < WINDOW:
                    k = resp.readinto(view[n:])
                    if not k:
                        break
                    n += k
                resp.read()
                local += int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, count=n) == imm))
                got += n
        except Exception as e:  # reported, not swallowed
            with lock:
                state["error"] = str(e)
        finally:
            conn.close()
        with lock:
            state["result"] += local
            state["bytes"] += got

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if state["error"]:
        print(json.dumps({"error": state["error"]}))
        sys.exit(1)
    print(json.dumps({"windows": windows, "bytes": state["bytes"], "elapsed_s": elapsed, "result": state["result"]}))


if __name__ == "__main__":
    main()
