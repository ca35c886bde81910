#!/usr/bin/env python3
"""Where a drop's CPU goes (#36): two release daemons on loopback, a task linked, then
FILES files of SIZE bytes moved into it with one rename; the time until the other folder
holds them whole, and each daemon thread's CPU seconds over the drop (from
/proc/PID/task/TID/stat), heaviest first.

Options (environment): QSYNC_BIN (target/release/qsync), FILES (1000), SIZE (1048576),
DIRTY_MIB (0: the MiB written without fsync to another file just before the drop, the
state a disk is in after another program wrote), DROPS (2), PERF (a path: `perf record -g`
of both daemons during the first drop, written there).

Usage: scripts/drop-profile.py
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

QSYNC = os.path.abspath(os.environ.get("QSYNC_BIN", "target/release/qsync"))
FILES = int(os.environ.get("FILES", "1000"))
SIZE = int(os.environ.get("SIZE", str(1 << 20)))
DIRTY_MIB = int(os.environ.get("DIRTY_MIB", "0"))
DROPS = int(os.environ.get("DROPS", "2"))
PERF = os.environ.get("PERF")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cli(state, *args, check=True):
    out = subprocess.run([QSYNC, "--state-dir", state, *args], capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"qsync {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def threads(pid):
    """CPU seconds per thread name (threads of one name summed)."""
    cpu = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        cpu[name] = cpu.get(name, 0) + (int(fields[11]) + int(fields[12])) / TICK
    return cpu


def start(base, name):
    state = os.path.join(base, name)
    port = free_port()
    log = open(state + ".log", "w")
    p = subprocess.Popen([QSYNC, "--state-dir", state, "daemon", "--no-mdns", "--listen-ip",
                          "127.0.0.1", "--port", str(port), "--name", name, "--http", "off"],
                         stdout=log, stderr=log)
    for _ in range(200):
        if subprocess.run([QSYNC, "--state-dir", state, "status"], capture_output=True).returncode == 0:
            return state, port, p
        time.sleep(0.1)
    sys.exit(f"daemon {name} did not start")


def link(a, task, port_b, b, dest):
    p = subprocess.Popen([QSYNC, "--state-dir", a, "link", task, f"127.0.0.1:{port_b}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    code = line[len("code "):][:9]
    for _ in range(300):
        qs = json.loads(cli(b, "--json", "questions") or "{}")
        asked = [q for q in qs.get("questions", []) if q.get("flag") == "CHOOSELINKPATH"]
        if asked:
            cli(b, "answer", str(asked[0]["id"]), f"{code} {dest}")
            break
        time.sleep(0.1)
    out, err = p.communicate(timeout=120)
    if p.returncode != 0:
        sys.exit(f"link failed: {out}{err}")


def filled(dest):
    try:
        names = os.listdir(dest)
    except OSError:
        return 0, 0
    count = total = 0
    for n in names:
        if n.startswith("."):
            continue
        count += 1
        total += os.stat(os.path.join(dest, n)).st_size
    return count, total


def prepare(d, seed):
    os.makedirs(d)
    rnd = random.Random(seed)
    for i in range(FILES):
        with open(os.path.join(d, f"f{i:06}"), "wb") as f:
            f.write(rnd.randbytes(SIZE))


def main():
    base = tempfile.mkdtemp(prefix="qsync-drop-", dir=os.environ.get("TMPDIR", "/tmp"))
    print(base, file=sys.stderr)
    try:
        a, _, pa = start(base, "alpha")
        b, port_b, pb = start(base, "beta")
        src, dest = os.path.join(base, "src"), os.path.join(base, "dest")
        os.makedirs(src)
        open(os.path.join(src, "already-there.txt"), "w").write("linked before")
        task = json.loads(cli(a, "--json", "task", "add", src))["task"]
        link(a, task, port_b, b, dest)
        print(f"linked {task}", file=sys.stderr)
        for drop in range(DROPS):
            incoming = os.path.join(base, f"incoming{drop}")
            prepare(incoming, drop)
            if DIRTY_MIB:
                with open(os.path.join(base, f"dirty{drop}"), "wb") as f:
                    for _ in range(DIRTY_MIB):
                        f.write(os.urandom(1 << 20))
            perf = None
            if PERF and drop == 0:
                perf = subprocess.Popen(["perf", "record", "-g", "-o", PERF, "-p",
                                         f"{pa.pid},{pb.pid}"], stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            before = (threads(pa.pid), threads(pb.pid))
            t = time.monotonic()
            os.rename(incoming, os.path.join(src, f"batch{drop}"))
            want = (FILES, FILES * SIZE)
            while filled(os.path.join(dest, f"batch{drop}")) != want:
                time.sleep(0.02)
            took = time.monotonic() - t
            time.sleep(2)  # the keeper's work after the transfer
            after = (threads(pa.pid), threads(pb.pid))
            if perf:
                perf.send_signal(2)
                perf.wait()
            gib = FILES * SIZE / (1 << 30)
            spent = []
            for side, (b0, a0) in zip(("sender", "receiver"), zip(before, after)):
                for name, secs in a0.items():
                    spent.append((secs - b0.get(name, 0), side, name))
            total = sum(s for s, _, _ in spent)
            print(f"drop {drop + 1}: {FILES} x {SIZE} B in {took:.2f} s; "
                  f"{total / gib:.1f} CPU-s/GiB (both daemons, 2 s after)")
            for secs, side, name in sorted(spent, reverse=True)[:12]:
                if secs > 0:
                    print(f"  {secs:6.2f} s  {side:8}  {name}")
            sys.stdout.flush()
        pa.terminate()
        pb.terminate()
        pa.wait()
        pb.wait()
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
