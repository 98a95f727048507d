// Summarises a V8 .cpuprofile (`node --cpu-prof`) into where the time went: self time by category
// (crypto, JSON, validation, database, logging, metrics, HTTP, GC…), by module (npm package or
// source file) and by function, and inclusive time of the project's own functions (so that
// "verifyEnvelopeSignature" counts the native Ed25519 call under it). Optionally only the samples of
// one time window (monotonic microseconds, the clock of the profile's startTime: bench/ingest.ts
// records each load phase's window next to the profile's path).
//   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--from US --to US] [--top N] [--requests N] [--md]
// --requests N adds milliseconds per request to every row. Prints JSON, or markdown tables with --md.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame belongs, first match wins; the categories the README table reports. */
const CATEGORIES: [string, RegExp][] = [
  ['idle', /^\(idle\)$/],
  ['gc', /^\(garbage collector\)$/],
  ['crypto', /node:internal\/crypto|@noble\/|src\/protocol\/(crypto|hpke)|src\/runtime\/node-(crypto|aead)/],
  ['validation', /ajv|inventory-validator|zod|src\/server\/glpi/],
  ['database', /node_modules\/(postgres|drizzle-orm)\/|src\/db\/|store-batcher/],
  ['logging', /node_modules\/(pino|sonic-boom|thread-stream|fast-redact)/],
  ['metrics', /node_modules\/(prom-client|tdigest|bintrees)|src\/runtime\/metrics/],
  ['zlib', /node:zlib|src\/runtime\/zlib|decompress/],
  ['http (hono, node-server)', /node_modules\/(hono|@hono)\//],
  ['http (node)', /node:(_http|http|net|stream|internal\/(streams|http|webstreams|deps\/undici))|undici/],
  ['protocol (other)', /src\/protocol\//],
  ['server (ours)', /src\/server\/|bench\//],
  ['node (other)', /^node:/],
];

function categoryOf(functionName: string, url: string): string {
  const key = url || `(${functionName})`;
  for (const [name, re] of CATEGORIES) if (re.test(key) || re.test(functionName)) return name;
  if (!url) {
    if (/^(parse|stringify|JSON\.\w+)$/.test(functionName)) return 'json';
    // Socket writes: to the client and to PostgreSQL alike.
    if (/^(writev|writeBuffer|writeUtf8String|writeLatin1String|utf8Write)$/.test(functionName)) return 'socket writes';
    if (/^(runMicrotasks|enqueueMicrotask)$/.test(functionName)) return 'promises (microtasks)';
    if (functionName === '(program)') return 'V8 (program)';
    return 'native (other)';
  }
  return 'other';
}

function moduleOf(url: string, functionName: string): string {
  if (!url) return `(native) ${functionName || '(anonymous)'}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/((?:src|bench)\/.*)$/.exec(url);
  if (ours) return ours[1]!;
  return url.replace(/^file:\/\//, '');
}

export interface Summary {
  window: { fromUs: number; toUs: number; sampledMs: number; busyMs: number };
  byCategory: Row[];
  byModule: Row[];
  byFunction: Row[];
  /** Our own functions (src/), time including everything they call. */
  inclusive: Row[];
}
interface Row {
  name: string;
  ms: number;
  share: number;
  msPerRequest?: number;
}

export function summarise(profile: CpuProfile, opts: { from?: number; to?: number; top?: number; requests?: number } = {}): Summary {
  const top = opts.top ?? 20;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let t = profile.startTime;
  const from = opts.from ?? -Infinity;
  const to = opts.to ?? Infinity;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < from || t > to) continue;
    // A sample stands for the time until the next one.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt);
  }
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  const cats = new Map<string, number>();
  const mods = new Map<string, number>();
  const fns = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    total += us;
    if (functionName === '(idle)') idle += us;
    add(cats, categoryOf(functionName, url), us);
    add(mods, moduleOf(url, functionName), us);
    add(fns, `${functionName || '(anonymous)'} ${url ? `${moduleOf(url, functionName)}:${lineNumber + 1}` : ''}`.trim(), us);
    // Inclusive: each of our functions on the stack once, however often it recurs.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!/\/src\//.test(f.url)) continue;
      const key = `${f.functionName || '(anonymous)'} ${moduleOf(f.url, f.functionName)}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      add(incl, key, us);
    }
  }
  const busy = total - idle;
  const rows = (m: Map<string, number>, n: number): Row[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({
        name,
        ms: round(us / 1000),
        share: round(us / (busy || 1)),
        ...(opts.requests ? { msPerRequest: round(us / 1000 / opts.requests, 4) } : {}),
      }));
  return {
    window: {
      fromUs: Number.isFinite(from) ? from : profile.startTime,
      toUs: Number.isFinite(to) ? to : profile.endTime,
      sampledMs: round(total / 1000),
      busyMs: round(busy / 1000),
    },
    byCategory: rows(cats, Infinity).filter((r) => r.name !== 'idle'),
    byModule: rows(mods, top),
    byFunction: rows(fns, top),
    inclusive: rows(incl, top),
  };
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

function markdown(s: Summary): string {
  const table = (title: string, rows: Row[]) => {
    const perReq = rows.some((r) => r.msPerRequest !== undefined);
    return [
      `| ${title} | ms | share of busy |${perReq ? ' ms/request |' : ''}`,
      `|---|---:|---:|${perReq ? '---:|' : ''}`,
      ...rows.map(
        (r) => `| ${r.name.replaceAll('|', '\\|')} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |${perReq ? ` ${r.msPerRequest} |` : ''}`,
      ),
    ].join('\n');
  };
  return [
    `Busy ${s.window.busyMs} ms of ${s.window.sampledMs} ms sampled.`,
    table('category (self time)', s.byCategory),
    table('module (self time)', s.byModule),
    table('function (self time)', s.byFunction),
    table('our function (inclusive)', s.inclusive),
  ].join('\n\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      top: { type: 'string' },
      requests: { type: 'string' },
      md: { type: 'boolean' },
    },
  });
  const file = positionals[0];
  if (!file) {
    console.error('usage: profile-summary.ts FILE.cpuprofile [--from US --to US] [--top N] [--requests N] [--md]');
    process.exit(2);
  }
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const summary = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, {
    from: num(values.from),
    to: num(values.to),
    top: num(values.top),
    requests: num(values.requests),
  });
  console.log(values.md ? markdown(summary) : JSON.stringify(summary, null, 2));
}
