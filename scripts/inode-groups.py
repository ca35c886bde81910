#!/usr/bin/env python3
"""Why a first drop can be slow on ext4 without a journal (issue #36): a measurement.

On ext4 without a journal, a new inode skips those freed in the last minutes
(`recently_deleted` in the kernel's inode allocator), reading the inode table to find
them: creating files in a folder whose block group holds many recently freed inodes is
slow. QSync makes each received file in its staging folder and renames it into the
target, so every received file that is later removed dirties the staging folder's group;
rsync makes its temporaries beside the target.

Each row: 2,000 files of 4 KiB made QSync's way and rsync's way, then removed (as the
bench removes each row's files before the next). Prints the time per row and the first
inode of each way. Run it on the file system the bench uses: python3 scripts/inode-groups.py [DIR]
"""
import os
import shutil
import sys
import tempfile
import time

N = 2000


def make(path):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"x" * 4096)
    os.close(fd)


def way(made_in, target, names):
    """Make N files in `made_in`, each renamed to `target`; seconds taken, first inode."""
    start = time.time()
    for i in range(N):
        made = os.path.join(made_in, f"{names}{i}")
        make(made)
        os.rename(made, os.path.join(target, f"f{i}"))
    return time.time() - start, os.stat(os.path.join(target, "f0")).st_ino


def main():
    base = tempfile.mkdtemp(prefix="inode-groups-", dir=sys.argv[1] if len(sys.argv) > 1 else None)
    try:
        staging = os.path.join(base, "state", "staging")
        os.makedirs(staging)
        for row in range(3):
            target = os.path.join(base, f"target{row}")
            beside = os.path.join(base, f"rsync{row}")
            os.makedirs(target)
            os.makedirs(beside)
            staged, staged_ino = way(staging, target, f"part{row}-")
            besides, beside_ino = way(beside, beside, ".tmp")
            print(
                f"row {row}: made in staging, renamed into the target {staged:.2f} s "
                f"(inode {staged_ino}); made beside the target {besides:.2f} s (inode {beside_ino})"
            )
            shutil.rmtree(target)
            shutil.rmtree(beside)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
