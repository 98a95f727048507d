// What the app reports about itself. The Node runtime backs it with prom-client (GET /metrics);
// the Worker uses the no-op. Label values are bounded sets (route patterns, codes), never raw input.

export interface Telemetry {
  /** One finished HTTP request: `route` is the matched pattern (e.g. /v1/admin/tokens/:id). */
  request(method: string, route: string, status: number, seconds: number): void;
  /** A counted domain event, e.g. ('enrollments_total', { outcome: 'success' }). */
  count(name: string, labels?: Record<string, string>, value?: number): void;
  /**
   * A gauge whose values are read when /metrics is scraped (e.g. the forwarding backlog from the
   * database), one sample per label set. A failing read leaves the gauge empty for that scrape.
   */
  readonly gauge?: (
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => Promise<{ labels: Record<string, string>; value: number }[]>,
  ) => void;
  /** Prometheus text exposition, when this runtime has one. */
  readonly exposition?: () => Promise<{ contentType: string; body: string }>;
}

export const noTelemetry: Telemetry = {
  request: () => {},
  count: () => {},
};
