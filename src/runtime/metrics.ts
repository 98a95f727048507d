// prom-client behind the app's Telemetry interface (Node only). Counters for domain events are
// created on first use, so features add theirs by calling telemetry.count('name', labels).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HISTOGRAMS, type HistogramName, type Telemetry } from '../server/telemetry.js';

const METRIC_NAME = /^[a-z_][a-z0-9_]*$/;
const MAX_CACHED_LABEL_SETS = 1024;

/** With its registry: a `--workers` worker hands it to the primary's aggregator (runtime/cluster.ts). */
export function createPromTelemetry(): Telemetry & { registry: Registry } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'latchkey_' });
  const requests = new Counter({
    name: 'latchkey_http_requests_total',
    help: 'HTTP requests by method, matched route and status.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'latchkey_http_request_duration_seconds',
    help: 'HTTP request latency by method, matched route and status.',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const children = new Map<string, { requests: { inc(): void }; latency: { observe(v: number): void } }>();
  const counters = new Map<string, Counter>();
  const histograms = new Map<HistogramName, Histogram>();
  for (const [name, { help, buckets }] of Object.entries(HISTOGRAMS) as [HistogramName, (typeof HISTOGRAMS)[HistogramName]][]) {
    histograms.set(name, new Histogram({ name: `latchkey_${name}`, help, buckets: [...buckets], registers: [registry] }));
  }
  const gauges = new Set<string>();

  return {
    registry,
    request(method, route, status, seconds) {
      // The labelled children are looked up once per label set, not hashed from an object per request.
      const key = `${method} ${route} ${status}`;
      let child = children.get(key);
      if (!child) {
        const labels = { method, route, status: String(status) };
        child = { requests: requests.labels(labels), latency: latency.labels(labels) };
        // Bounded (a client picks the method): past the cap, label sets are counted but not cached.
        if (children.size < MAX_CACHED_LABEL_SETS) children.set(key, child);
      }
      child.requests.inc();
      child.latency.observe(seconds);
    },
    count(name, labels = {}, value = 1) {
      const full = `latchkey_${name}`;
      if (!METRIC_NAME.test(full)) return;
      let counter = counters.get(full);
      if (!counter) {
        counter = new Counter({
          name: full,
          help: `Latchkey ${name.replaceAll('_', ' ')}.`,
          labelNames: Object.keys(labels),
          registers: [registry],
        });
        counters.set(full, counter);
      }
      try {
        counter.inc(labels, value);
      } catch {
        // A label set that differs from the first use is a programming error; metrics never fail a request.
      }
    },
    observe(name, value) {
      histograms.get(name)?.observe(value);
    },
    gauge(name, help, labelNames, read) {
      const full = `latchkey_${name}`;
      if (!METRIC_NAME.test(full) || gauges.has(full)) return;
      gauges.add(full);
      new Gauge({
        name: full,
        help,
        labelNames: [...labelNames],
        registers: [registry],
        async collect() {
          this.reset();
          try {
            for (const s of await read()) this.set(s.labels, s.value);
          } catch {
            // The database is away: no sample this scrape, and /metrics still answers.
          }
        },
      });
    },
    exposition: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
  };
}
