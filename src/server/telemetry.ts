// What the app reports about itself. The Node runtime backs it with prom-client (GET /metrics);
// the Worker uses the no-op. Label values are bounded sets (route patterns, codes), never raw input.

export interface Telemetry {
  /** One finished HTTP request: `route` is the matched pattern (e.g. /v1/admin/tokens/:id). */
  request(method: string, route: string, status: number, seconds: number): void;
  /** A counted domain event, e.g. ('enrollments_total', { outcome: 'success' }). */
  count(name: string, labels?: Record<string, string>, value?: number): void;
  /**
   * One observation of a distribution, e.g. ('store_batch_size', 12). Only names declared in
   * HISTOGRAMS are kept (their buckets are fixed there); others are ignored.
   */
  observe?(name: HistogramName, value: number): void;
  /**
   * A gauge whose values are read when /metrics is scraped (a queue length in memory, the
   * forwarding backlog from the database), one sample per label set; registered once per name. A
   * failing read leaves the gauge empty for that scrape.
   */
  gauge?(name: string, help: string, labelNames: readonly string[], read: () => GaugeSamples | Promise<GaugeSamples>): void;
  /** Prometheus text exposition, when this runtime has one. */
  readonly exposition?: () => Promise<{ contentType: string; body: string }>;
}

/** A gauge's samples at one scrape. */
export type GaugeSamples = { labels: Record<string, string>; value: number }[];

/** Distributions the app reports, with their buckets. */
export const HISTOGRAMS = {
  /** Messages stored by one statement of the store batcher (services/store-batcher.ts). */
  store_batch_size: { help: 'Messages per store statement (group commit).', buckets: [1, 2, 4, 8, 16, 32, 64] },
  /** One store statement, from send to its answer (seconds). */
  store_batch_seconds: {
    help: 'Store statement latency in seconds, per batch.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  },
} as const;
export type HistogramName = keyof typeof HISTOGRAMS;

export const noTelemetry: Telemetry = {
  request: () => {},
  count: () => {},
  observe: () => {},
  gauge: () => {},
};
