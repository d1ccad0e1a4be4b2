"""Prometheus metrics of a run (`run --metrics PORT`, `Recognizer.stream(..., metrics=PORT)`),
with the prometheus-client library (the `metrics` extra), served on 127.0.0.1 unless told.

Per source (label `source`, a URL's password masked): frames read, windows written, frames
dropped, outages and seconds in outage, reconnects, whether it is open, seconds since its last
frame. Per engine (labels `engine`, `precision`): the latency and size of each batch, as
histograms. The source figures are read from the readers when Prometheus scrapes (a custom
collector), so the run's loop does no bookkeeping for them; the engine's are observed by a
thin wrapper around the backend.
"""

from __future__ import annotations

import threading
import time
import weakref

from ..errors import PRPError

EXTRA = "pip install 'prp-deploy[metrics]'"
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def _prometheus():
    try:
        import prometheus_client
    except ImportError:
        raise PRPError(f"--metrics needs prometheus-client: {EXTRA}") from None
    return prometheus_client


class RunMetrics:
    """A metrics endpoint for the sources `watch` is given and the backends `timed` wraps; `close`
    stops it. Port 0 takes a free one (`port` says which)."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        pc = _prometheus()
        if not 0 <= port <= 65535:
            raise PRPError(f"--metrics wants a port from 0 to 65535, got {port}")
        self.registry = pc.CollectorRegistry()
        self.latency = pc.Histogram("prp_engine_batch_latency_seconds", "Seconds one engine call took, per batch",
                                    ["engine", "precision"], registry=self.registry, buckets=LATENCY_BUCKETS_S)
        self.batch_size = pc.Histogram("prp_engine_batch_size", "Windows in each engine call", ["engine", "precision"],
                                       registry=self.registry, buckets=BATCH_BUCKETS)
        self._sources: list = []
        self._lock = threading.Lock()
        self.registry.register(_SourceCollector(self))
        try:
            self._server, self._thread = pc.start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:  # the port taken, a host that is not this machine's
            raise PRPError(f"--metrics: cannot listen on {host}:{port}: {e.strerror or e}") from None
        self.host, self.port = host, self._server.server_port
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def watch(self, sources) -> None:
        with self._lock:
            self._sources.extend(sources)

    def sources(self) -> list:
        with self._lock:
            return list(self._sources)

    def timed(self, backend) -> "TimedBackend":
        return TimedBackend(backend, self)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()

    def close_with(self, owner) -> None:
        """Close when `owner` (a generator the caller may never start) is collected, as well as when it ends."""
        weakref.finalize(owner, self.close)


class TimedBackend:
    """The backend, its every call observed: batch latency and size, labelled by engine and precision."""

    def __init__(self, backend, metrics: RunMetrics):
        self._backend = backend
        labels = {"engine": getattr(backend, "name", type(backend).__name__), "precision": getattr(backend, "precision", None) or "fp32"}
        self._latency = metrics.latency.labels(**labels)
        self._size = metrics.batch_size.labels(**labels)

    def run(self, x):
        t0 = time.perf_counter()
        out = self._backend.run(x)
        self._latency.observe(time.perf_counter() - t0)
        self._size.observe(len(x))
        return out

    def __getattr__(self, name):  # everything else is the backend's own (name, max_batch, clip_shape, ...)
        return getattr(self._backend, name)


class _SourceCollector:
    """Each watched source's figures as Prometheus scrapes: from its reader while it is open,
    from its final stats once it closed."""

    def __init__(self, metrics: RunMetrics):
        self._metrics = metrics

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {
            "frames": CounterMetricFamily("prp_source_frames_read", "Frames decoded from the source", labels=["source"]),
            "windows": CounterMetricFamily("prp_source_windows", "Windows run through the engine", labels=["source"]),
            "dropped": CounterMetricFamily("prp_source_frames_dropped", "Frames a live source dropped while the engine was behind",
                                           labels=["source"]),
            "outages": CounterMetricFamily("prp_source_outages", "Times a live source stopped delivering without ending", labels=["source"]),
            "outage_s": CounterMetricFamily("prp_source_outage_seconds", "Seconds without frames, the outage in progress included",
                                            labels=["source"]),
            "reconnects": CounterMetricFamily("prp_source_reconnects", "Successful reopens after an outage", labels=["source"]),
            "open": GaugeMetricFamily("prp_source_open", "1 while the source is open (in an outage too), 0 once it ended", labels=["source"]),
            "age": GaugeMetricFamily("prp_source_seconds_since_last_frame", "Seconds since the source's last frame (absent before the first)",
                                     labels=["source"]),
        }
        now = time.perf_counter()
        for src in (s for s in self._metrics.sources() if s.status != "queued"):
            figures = _figures(src, now)
            for key, family in families.items():
                if figures.get(key) is not None:
                    family.add_metric([src.name], figures[key])
        yield from families.values()


def _figures(src, now: float) -> dict:
    r = src.reader  # read once: the loop sets it to None when the source closes
    if r is not None:
        return {"frames": r.frames, "windows": src.stats.windows, "dropped": r.dropped, "outages": r.outages,
                "outage_s": r.outage_s + r.outage_now_s(), "reconnects": r.reopened, "open": 1,
                "age": None if r.last_frame_at is None else now - r.last_frame_at}
    st = src.stats
    return {"frames": st.frames, "windows": st.windows, "dropped": st.dropped_frames, "outages": st.outages,
            "outage_s": st.outage_s, "reconnects": st.reconnects, "open": 0}


def start_metrics(port: int | None, host: str, say) -> RunMetrics | None:
    """The run's endpoint, said in one line; None when no port is asked for."""
    if port is None:
        return None
    metrics = RunMetrics(port, host)
    say(f"metrics: {metrics.url}")
    return metrics


__all__ = ["EXTRA", "RunMetrics", "TimedBackend", "start_metrics"]
