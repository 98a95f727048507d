// The load generator, run as its own process: autocannon POSTs each body once (in order, cycling
// over connections) and prints throughput and latency as JSON. Every run is bounded in time: a
// fixed-count run that has not finished after MAX_SECONDS is stopped and reported as incomplete.
//   node --import tsx bench/load.ts URL PATH BODIES.jsonl CONNECTIONS [REPEAT_SECONDS]
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const [url, path, file, connections, repeatSeconds] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const bodies = readFileSync(file, 'utf8').split('\n').filter(Boolean);
let i = 0;
// autocannon notices the end of a fixed-count run only on its one-second tick, so its duration is
// rounded up to whole seconds; time the run from the first request to the last response instead.
let firstAt = 0;
let lastAt = 0;
let answered = 0;
const opts: autocannon.Options = {
  url,
  connections: Number(connections),
  timeout: 30,
  requests: [
    {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => {
        if (firstAt === 0) firstAt = performance.now();
        return { ...req, body: bodies[i++ % bodies.length] };
      },
      onResponse: () => {
        lastAt = performance.now();
        answered++;
      },
    },
  ],
  // Unique bodies (sealed envelopes) are each sent once; a repeatable body runs for a fixed time.
  ...(repeatSeconds ? { duration: Number(repeatSeconds) } : { amount: bodies.length }),
};
const MAX_SECONDS = 120;
const r = await new Promise<autocannon.Result>((resolve, reject) => {
  const instance = autocannon(opts, (err, result) => (err ? reject(err) : resolve(result)));
  setTimeout(() => instance.stop(), MAX_SECONDS * 1000).unref();
});
console.log(
  JSON.stringify({
    requests: r.requests.total,
    seconds: Number(((lastAt - firstAt) / 1000).toFixed(3)),
    reqPerSec: Math.round(answered / ((lastAt - firstAt) / 1000)),
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
    non2xx: r.non2xx,
    statusCodes: r.statusCodeStats,
    errors: r.errors,
    timeouts: r.timeouts,
    complete: repeatSeconds ? true : answered >= bodies.length,
  }),
);
