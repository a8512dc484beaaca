"""The web app's round trip: `python app.py` started as the README says, then what the page does
for one melody, timed: POST /api/generate (symbols and the SVG score) and GET its WAV.

    python bench/webapp.py                          # model.pth, 20 melodies of 256 steps
    python bench/webapp.py --model runs/x/model.pth --repeats 50
    python bench/webapp.py --memory 1000            # then 1,000 melodies, none downloaded: RSS

Each melody is asked for as 16 bars of 4/4 (exactly 256 steps) when the model knows 4/4, else as
256 steps in the meter drawn. Prints the median and the slowest round trip; the target is 1 s.
"""

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def request(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=60) as reply:
        return reply.read()


def rss_mb(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def memory_growth(url, pid, controls, count):
    """The server's resident memory before and after `count` generations (two at a time, as two
    users would) whose files are never downloaded: what the melody store keeps."""
    before = rss_mb(pid)
    bodies = [{**controls, "random_seed": 10_000 + i} for i in range(count)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(request, [url + "/api/generate"] * count, bodies))
    print(f"{count} melodies, none downloaded: server RSS {before:.0f} -> {rss_mb(pid):.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="model.pth", help="checkpoint written by train.py")
    parser.add_argument("--repeats", type=int, default=20, help="melodies timed, one at a time")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument(
        "--memory", type=int, default=0, help="then N more melodies, none downloaded: server RSS"
    )
    args = parser.parse_args()
    if not Path(args.model).is_file():
        sys.exit(f"error: {args.model} not found: run preprocess.py and train.py first")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--model", args.model]
    )
    try:
        started = time.perf_counter()
        while True:
            try:
                models = json.loads(request(url + "/api/models"))["models"]
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None:
                    sys.exit("error: app.py stopped")
                time.sleep(0.1)
        print(f"app.py answered after {time.perf_counter() - started:.1f} s (model loaded)")
        controls = {"model": models[0]["id"], "seed": "", "steps": args.steps}
        meters = next((c["options"] for c in models[0]["controls"] if c["name"] == "meter"), [])
        if args.steps % 16 == 0 and "4/4" in meters:
            controls.update(meter="4/4", bars=args.steps // 16)
        times, lengths = [], []
        for i in range(args.repeats + 1):  # the first warms up music21, verovio and torch
            begin = time.perf_counter()
            melody = json.loads(request(url + "/api/generate", {**controls, "random_seed": i}))[
                "melodies"
            ][0]
            wav = request(url + melody["wav"])
            if i:
                times.append(time.perf_counter() - begin)
                lengths.append(len(melody["symbols"]))
        assert melody["svg"].startswith("<svg") and wav[:4] == b"RIFF"
        print(
            f"{args.repeats} melodies of {statistics.median(lengths):.0f} steps (score and WAV "
            f"included): median {statistics.median(times):.3f} s, slowest {max(times):.3f} s "
            "(target 1 s)"
        )
        if args.memory:
            memory_growth(url, server.pid, controls, args.memory)
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
