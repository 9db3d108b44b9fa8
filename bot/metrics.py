"""A few Prometheus counters and histograms, rendered in the text exposition format.

Kept in-process and dependency-free: the web process has one worker by default, so its
counters are the service's.
"""

from __future__ import annotations

import threading
from collections import defaultdict

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.hist: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
        self.help: dict[str, str] = {}

    def inc(self, name: str, help_: str = "", value: float = 1.0, **labels: str) -> None:
        with self._lock:
            self.counters[(name, tuple(sorted(labels.items())))] += value
            if help_:
                self.help[name] = help_

    def observe(self, name: str, seconds: float, help_: str = "", **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            counts = self.hist.setdefault(key, [0.0] * (len(_BUCKETS) + 2))
            for i, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-2] += 1  # count
            counts[-1] += seconds  # sum
            if help_:
                self.help[name] = help_

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted({n for n, _ in self.counters}):
                lines.append(f"# HELP {name} {self.help.get(name, name)}")
                lines.append(f"# TYPE {name} counter")
                for (n, labels), value in sorted(self.counters.items()):
                    if n == name:
                        lines.append(f"{name}{_labels(labels)} {value:g}")
            for name in sorted({n for n, _ in self.hist}):
                lines.append(f"# HELP {name} {self.help.get(name, name)}")
                lines.append(f"# TYPE {name} histogram")
                for (n, labels), counts in sorted(self.hist.items()):
                    if n != name:
                        continue
                    for i, bound in enumerate(_BUCKETS):
                        lines.append(f"{name}_bucket{_labels((*labels, ('le', f'{bound:g}')))} {counts[i]:g}")
                    lines.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {counts[-2]:g}")
                    lines.append(f"{name}_count{_labels(labels)} {counts[-2]:g}")
                    lines.append(f"{name}_sum{_labels(labels)} {counts[-1]:g}")
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + inner + "}"


METRICS = Metrics()
