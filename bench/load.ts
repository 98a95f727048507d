// The load generator, run as its own process: autocannon POSTs each body once (in order, cycling
// over connections) and prints throughput and latency as JSON.
//   node --import tsx bench/load.ts URL PATH BODIES.jsonl CONNECTIONS [REPEAT_SECONDS]
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const [url, path, file, connections, repeatSeconds] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const bodies = readFileSync(file, 'utf8').split('\n').filter(Boolean);
let i = 0;
const opts: autocannon.Options = {
  url,
  connections: Number(connections),
  timeout: 30,
  requests: [
    {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: bodies[i++ % bodies.length] }),
    },
  ],
  // Unique bodies (sealed envelopes) are each sent once; a repeatable body runs for a fixed time.
  ...(repeatSeconds ? { duration: Number(repeatSeconds) } : { amount: bodies.length }),
};
const r = await autocannon(opts);
console.log(
  JSON.stringify({
    requests: r.requests.total,
    seconds: r.duration,
    reqPerSec: Math.round(r.requests.total / r.duration),
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
    non2xx: r.non2xx,
    statusCodes: r.statusCodeStats,
    errors: r.errors,
    timeouts: r.timeouts,
  }),
);
