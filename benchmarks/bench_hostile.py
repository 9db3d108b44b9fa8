"""What a hostile request costs the real web process: time to the answer and the worker's memory.

Starts `python -m bot.cli serve --port 0` (gunicorn, 1 worker) with the Slack face on the
stand-in and a real AIMODEL_HOME, reads the gunicorn worker's resident memory (VmRSS) from
/proc, then sends, signed, one at a time:

  10 MB slash command   refused with 413 from its Content-Length (the body is never read)
  2 MiB - 1 KB slash    just under the body limit: read, then its text is over the cap
  100 KB slash text     read; the grammar refuses the text unread
  /aimodel list         a normal command, for comparison

and again the worker's memory after each. Issue 8 measured the same 10 MB request before the
limits: no answer within 300 s, the worker grown from 64 MB to 189 MB.

    python benchmarks/bench_hostile.py [--repeat 5]

Not part of the test run. The numbers depend on the machine; compare runs on one machine.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers.limits import SLACK_MAX_BODY  # noqa: E402
from tests import slack_helpers as h  # noqa: E402
from tests.standins.slack_api import SlackStandIn  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        h.init_home(home)
        with SlackStandIn() as slack:
            slack.add_bot_token(h.TOKEN)
            web = h.WebProcess(home, h.server_env(home, slack), Path(tmp) / "web.log").start()
            try:
                worker = int(re.findall(r"Booting worker with pid: (\d+)", web.log_text())[-1])
                h.post(web, slack.slash_command("list"))  # warm: the first request loads the listeners
                print(f"worker pid {worker}: {rss_mib(worker):.1f} MiB resident after start-up and one request")
                cases = {
                    "10 MB slash command": "list " + "x" * (10 * 1024 * 1024),
                    "2 MiB - 1 KB slash command": "list " + "x" * (SLACK_MAX_BODY - 1024),  # 'x' is one byte form-encoded
                    "100 KB slash text": "list --app " + "x" * 100_000,
                    "/aimodel list": "list",
                }
                print(f"{'request':<28} {'body bytes':>11} {'status':>6} {'median ms':>10} {'max ms':>8} {'RSS after MiB':>14}")
                for name, text in cases.items():
                    walls, status, size = [], 0, 0
                    for _ in range(args.repeat):
                        delivery = slack.slash_command(text)
                        size = len(delivery.body)
                        start = time.perf_counter()
                        with requests.post(web.events_url, data=delivery.body, headers=delivery.headers(h.SECRET), timeout=300) as r:
                            status = r.status_code
                        walls.append((time.perf_counter() - start) * 1000)
                    print(f"{name:<28} {size:>11,} {status:>6} {statistics.median(walls):>10.2f} {max(walls):>8.2f} {rss_mib(worker):>14.1f}")
            finally:
                web.stop()
    print(f"\nreproduce: python benchmarks/bench_hostile.py --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
