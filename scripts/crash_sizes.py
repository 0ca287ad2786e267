#!/usr/bin/env python3
"""Crash campaigns at real sizes: states checked per second, peak memory, peak scratch disk.

Runs `ckpt-harness crash` in its own process for each case and watches it from
outside (every 0.2 s): the resident set of every process of the run (the
campaign, the saving zygote and its trials, the checker, strace) and the disk
its output folder takes (each inode counted once, allocated blocks, so holes
and hard links cost nothing). The figures are the peaks seen by that polling;
a peak shorter than 0.2 s can be missed.

Counting blocks per inode overstates a file system with reflinks (XFS with
reflink=1, btrfs): a range shared by two files is allocated once but shows in
both. So the watch also records the peak growth of the whole file system's
used blocks (statvfs) over its use at the start: on a file system given to the
run alone (--dir on a mount of its own) that is the run's true scratch disk.

    python scripts/crash_sizes.py                      # the cases of the closing note
    python scripts/crash_sizes.py --case trace:tf2-manager:64MiB --json

A case is MODE:API:SIZE[:TRIALS]; trace runs use the power model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from harness.units import format_bytes, parse_size  # noqa: E402

DEFAULT_CASES = ("trace:tf2-manager:64MiB", "trace:tf2-manager:256MiB", "trace:tf2-manager:1GiB",
                 "trace:tf2-manager:2GiB", "kill:keras-weights:1GiB:8")


def fs_used(root: str) -> int:
    st = os.statvfs(root)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def disk_used(root: str, listing: list | None = None) -> int:
    """Allocated bytes under root, each inode once; `listing` gets (bytes, links, path) per inode."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if listing is not None:
                    listing.append((st.st_blocks * 512, st.st_nlink, os.path.relpath(os.path.join(dirpath, f), root)))
    return total


class Watch(threading.Thread):
    def __init__(self, pid: int, root: str):
        super().__init__(daemon=True)
        self.pid, self.root = pid, root
        self.stop = threading.Event()
        self.campaign_rss = self.max_rss = self.sum_rss = self.disk = self.fs_growth = 0
        self.fs_start = fs_used(root)
        self.max_rss_cmd = ""
        self.peak_listing = []

    def run(self):
        try:
            top = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop.wait(0.2):
            try:
                procs = [top] + top.children(recursive=True)
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    if p.pid == self.pid:
                        self.campaign_rss = max(self.campaign_rss, rss)
                    if rss > self.max_rss:
                        self.max_rss, self.max_rss_cmd = rss, " ".join(p.cmdline()[:4])[-80:]
                    total += rss
                except psutil.Error:
                    pass
            self.sum_rss = max(self.sum_rss, total)
            listing = []
            disk = disk_used(self.root, listing)
            if disk > self.disk:   # what held the disk at its peak: the largest inodes
                self.disk, self.peak_listing = disk, sorted(listing, reverse=True)[:8]
            self.fs_growth = max(self.fs_growth, fs_used(self.root) - self.fs_start)


def run_case(case: str, python: str, keep: str | None) -> dict:
    parts = case.split(":")
    mode, api, size = parts[:3]
    trials = parts[3] if len(parts) > 3 else "8"
    out = tempfile.mkdtemp(prefix="ckpt-crash-size-", dir=keep)
    cmd = [python, "-m", "harness", "crash", "--mode", mode, "--api", api, "--size", size,
           "--trials", trials, "--out", out, "--quiet"] + (["--model", "power"] if mode == "trace" else [])
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(HERE), start_new_session=True)
    watch = Watch(proc.pid, out)
    watch.start()
    try:
        stdout, stderr = proc.communicate()
    except KeyboardInterrupt:
        os.killpg(proc.pid, 9)
        raise
    finally:
        watch.stop.set()
        watch.join()
    wall = time.monotonic() - t0
    try:
        if proc.returncode != 0:
            raise SystemExit(f"{case}: crash exited {proc.returncode}: {stderr.strip()[-400:]}")
        run_dir = next(os.path.join(out, d) for d in os.listdir(out)
                       if os.path.isfile(os.path.join(out, d, "metadata.json")))
        with open(os.path.join(run_dir, "metadata.json")) as f:
            meta = json.load(f)
        ckpt = parse_size(size)
        per = meta["per_api"][api]
        return {"case": case, "mode": mode, "api": api, "size": size, "checkpoint_bytes": ckpt,
                "states": meta["states_total"], "checked": meta["states_checked"],
                "by_group_sample": meta.get("states_by_group_sample", 0),
                "check_seconds": per["check_seconds"], "states_per_second": meta["states_per_second"],
                "outcomes": per["outcomes"], "wall_seconds": round(wall, 1),
                "campaign_peak_rss": watch.campaign_rss, "max_process_rss": watch.max_rss,
                "max_process": watch.max_rss_cmd, "sum_rss": watch.sum_rss,
                "peak_disk": watch.disk, "peak_disk_largest": [[b, n, p] for b, n, p in watch.peak_listing], "rss_over_checkpoint": round(watch.max_rss / ckpt, 2),
                "campaign_rss_over_checkpoint": round(watch.campaign_rss / ckpt, 3),
                "disk_over_checkpoint": round(watch.disk / ckpt, 2),
                "peak_fs_growth": watch.fs_growth, "fs_growth_over_checkpoint": round(watch.fs_growth / ckpt, 2),
                "tensorflow": meta.get("tensorflow_runtime_version", ""),
                "commit": meta.get("git_commit", "")}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="MODE:API:SIZE[:TRIALS] (repeatable)")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--dir", default=None, help="where the runs write (default: the temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for case in args.case or DEFAULT_CASES:
        row = run_case(case, args.python, args.dir)
        rows.append(row)
        print(f"{case}: {row['states']} states, {row['checked']} checked in {row['check_seconds']:.1f}s "
              f"= {row['states_per_second']:.1f} states/s; wall {row['wall_seconds']:.0f}s; "
              f"campaign RSS {format_bytes(row['campaign_peak_rss'])}, largest process "
              f"{format_bytes(row['max_process_rss'])} ({row['rss_over_checkpoint']}x checkpoint; "
              f"{row['max_process']}); disk {format_bytes(row['peak_disk'])} "
              f"({row['disk_over_checkpoint']}x), file system +{format_bytes(row['peak_fs_growth'])} "
              f"({row['fs_growth_over_checkpoint']}x); {row['outcomes']}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
