// The agents of bench/relay.ts, as a process of their own: each envelope is POSTed on its own, as an
// agent sends it, from its agent's own loopback address (127.1.x.y: the relay attests the address
// it heard each envelope from, and the server budgets per attested address, as it would for a real
// fleet), CONCURRENCY requests at a time, each on a connection of its own (an agent sends now and then).
//   node --import tsx bench/relay-load.ts URL FILE CONCURRENCY
// FILE: one "ADDRESS<TAB>ENVELOPE JSON" per line. Prints {requests, seconds, non2xx, statusCodes} as JSON.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';

const [url, file, concurrency] = process.argv.slice(2) as [string, string, string];
const target = new URL('/v1/messages', url);
const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
const statusCodes: Record<number, number> = {};
let next = 0;
let non2xx = 0;

function post(address: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        agent: false,
        localAddress: address,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        statusCodes[res.statusCode!] = (statusCodes[res.statusCode!] ?? 0) + 1;
        if (res.statusCode! < 200 || res.statusCode! >= 300) non2xx++;
        res.resume();
        res.on('end', resolve);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const start = performance.now();
await Promise.all(
  Array.from({ length: Number(concurrency) }, async () => {
    while (next < lines.length) {
      const line = lines[next++]!;
      const tab = line.indexOf('\t');
      await post(line.slice(0, tab), line.slice(tab + 1));
    }
  }),
);
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({ requests: lines.length, seconds: Number(seconds.toFixed(3)), non2xx, statusCodes, complete: true }));
