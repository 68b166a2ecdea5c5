"""Run a command and print its wall time, peak RSS and peak RssAnon (heap and
other anonymous memory, without the file-backed pages of a memory map)."""
import subprocess
import sys
import time


def rss(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:")):
                    name, kb = line.split()[:2]
                    out[name.rstrip(":")] = int(kb)
    except FileNotFoundError:
        pass
    return out


def main():
    start = time.monotonic()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak = {"VmRSS": 0, "RssAnon": 0}
    while proc.poll() is None:
        for k, v in rss(proc.pid).items():
            peak[k] = max(peak[k], v)
        time.sleep(0.005)
    wall = time.monotonic() - start
    print(f"{wall:.3f} {peak['VmRSS'] // 1024} {peak['RssAnon'] // 1024} {proc.returncode}")


if __name__ == "__main__":
    main()
