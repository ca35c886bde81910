#!/usr/bin/env python3
"""Measure #38's numbers with a release daemon and the web UI open in headless Chromium:

1. event latency: files made in a task's folder, one every 250 ms; for each, the time from
   its close to its `changed` event at an event-stream client (the watcher's debounce
   included), and the time from the event's publication (`at`) to its arrival;
2. idle cost: the daemon's CPU (percent of one core) and RSS over MINUTES with the page open.

Usage: scripts/web-idle.py [QSYNC_BIN] [MINUTES]   (needs chromium and chromedriver)
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

QSYNC = sys.argv[1] if len(sys.argv) > 1 else "target/release/qsync"
MINUTES = float(sys.argv[2]) if len(sys.argv) > 2 else 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(state, *args):
    return subprocess.run([QSYNC, "--state-dir", state, *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def webdriver(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["value"]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def follow_events(addr, key, seen):
    host, port = addr.split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(f"GET /rest/events HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\n\r\n".encode())
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return
        now = time.time()
        buf += chunk
        for line in buf.split(b"\n")[:-1]:
            if line.startswith(b"data: "):
                try:
                    ev = json.loads(line[6:])
                except ValueError:
                    continue
                if ev.get("event") == "changed" and ev.get("path"):
                    seen[ev["path"]] = (now, ev["at"] / 1000.0)
        buf = buf.split(b"\n")[-1]


def main():
    base = tempfile.mkdtemp(prefix="qsync-web-idle-")
    state, folder = os.path.join(base, "state"), os.path.join(base, "folder")
    os.makedirs(folder)
    daemon = subprocess.Popen([QSYNC, "--state-dir", state, "daemon", "--no-mdns", "--listen-ip",
                               "127.0.0.1", "--port", "0", "--http", "127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(state, "http.address")):
                break
            time.sleep(0.05)
        cli(state, "task", "add", folder)
        addr = open(os.path.join(state, "http.address")).read().split()[0]
        key = open(os.path.join(state, "http-api-key")).read().strip()
        port = free_port()
        driver = subprocess.Popen(["chromedriver", f"--port={port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wd = f"http://127.0.0.1:{port}"
        time.sleep(1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={base}/profile"]
        session = webdriver(wd, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})["sessionId"]
        webdriver(wd, "POST", f"/session/{session}/url", {"url": cli(state, "web").splitlines()[0]})
        seen = {}
        threading.Thread(target=follow_events, args=(addr, key, seen), daemon=True).start()
        time.sleep(2)

        made = {}
        for i in range(200):
            name = f"f{i:04}.txt"
            with open(os.path.join(folder, name), "w") as f:
                f.write("x" * i)
            made[name] = time.time()
            time.sleep(0.25)
        time.sleep(2)
        total = sorted(seen[n][0] - t for n, t in made.items() if n in seen)
        delivery = sorted(seen[n][0] - seen[n][1] for n in made if n in seen)

        def pct(xs, p):
            return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")
        print(f"events: {len(total)}/{len(made)} files had their `changed` event")
        print(f"file close -> event at the client (watcher debounce of 200 ms included): "
              f"p50 {pct(total, .5):.0f} ms, p99 {pct(total, .99):.0f} ms, max {pct(total, 1):.0f} ms")
        print(f"event published -> at the client: p50 {pct(delivery, .5):.0f} ms, "
              f"p99 {pct(delivery, .99):.0f} ms (clock of one machine, ms resolution)")

        pid = daemon.pid
        cpu0, rss0, t0 = cpu_seconds(pid), rss_kib(pid), time.time()
        samples = []
        while time.time() - t0 < MINUTES * 60:
            time.sleep(10)
            samples.append((time.time() - t0, cpu_seconds(pid) - cpu0, rss_kib(pid)))
        elapsed, used, rss_end = samples[-1]
        print(f"idle with the page open for {elapsed / 60:.1f} min: daemon CPU "
              f"{100 * used / elapsed:.2f}% of one core; RSS {rss0} KiB at start, "
              f"{rss_end} KiB at the end, max {max(s[2] for s in samples)} KiB")
        second_half = [s for s in samples if s[0] >= elapsed / 2]
        print(f"RSS over the second half: {second_half[0][2]} -> {second_half[-1][2]} KiB")
        webdriver(wd, "DELETE", f"/session/{session}")
        driver.terminate()
    finally:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    main()
