// Delivers the GLPI forwarding outbox (services/forward-outbox.ts) from a Node process: one loop per
// configured target claims the oldest due row of each agent, POSTs the inventory to GLPI's inventory
// endpoint as a GLPI agent does (JSON, zlib-compressed by default, `GLPI-Agent-ID` from
// glpi/agent-uuid.ts), and deletes the row once GLPI answered 2xx (and not `"status":"error"`).
// A failure puts the row back with exponential backoff and jitter, and pauses the target's loop
// (a target that is down costs one attempt per pause, not one per agent). Ingest never waits for
// any of this: it only writes rows.
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { deflateSync, gzipSync } from 'node:zlib';
import type { Database } from '../db/database.js';
import { isDatabaseFault } from '../db/faults.js';
import { glpiAgentUuid } from '../server/glpi/agent-uuid.js';
import type { Logger } from '../server/logger.js';
import {
  backoffMs,
  claimDue,
  markDelivered,
  markFailed,
  redactUrl,
  release,
  syncTargets,
  targetIdOf,
  type Claimed,
} from '../server/services/forward-outbox.js';

export type ForwardCompression = 'zlib' | 'gzip' | 'none';

export interface ForwardConfig {
  /** GLPI inventory endpoints (e.g. https://glpi.example/front/inventory.php); user info = basic auth. */
  urls: readonly string[];
  /** Client certificate and key (PEM) for https targets, and extra CA certificates to trust. */
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
  compression: ForwardCompression;
  /** Longest wait between two attempts of one row (ms). */
  retryMaxMs: number;
  /** How often an idle loop looks for new rows (ms). */
  pollMs: number;
  /** One request's deadline (ms); a claim's lease is twice this. */
  timeoutMs: number;
}

export const DEFAULT_FORWARD = { compression: 'zlib', retryMaxMs: 600_000, pollMs: 1000, timeoutMs: 30_000 } as const;

interface Target {
  id: string;
  url: URL;
  /** Without credentials: what logs and status show. */
  shown: string;
  authorization?: string;
}

/** Parses and checks the configured URLs (http or https only); throws with a message naming none of their secrets. */
export function parseTargets(urls: readonly string[]): Target[] {
  const seen = new Set<string>();
  const out: Target[] = [];
  for (const raw of urls) {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Error('a --forward-glpi value is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('--forward-glpi URLs must be http:// or https://');
    const id = targetIdOf(url);
    if (seen.has(id)) continue;
    seen.add(id);
    const t: Target = { id, url, shown: redactUrl(url) };
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      t.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    }
    out.push(t);
  }
  return out;
}

export interface Forwarder {
  stop(): Promise<void>;
}

/**
 * Makes the configured targets the active set (logging what a removed target drops), then starts one
 * delivery loop per target. With no targets it only deactivates the old ones.
 */
export async function startForwarder(
  database: Database,
  config: ForwardConfig,
  logger: Logger,
  now: () => number = () => Date.now(),
): Promise<Forwarder> {
  const targets = parseTargets(config.urls);
  const sync = await syncTargets(
    database.db,
    targets.map((t) => ({ id: t.id, url: t.shown })),
    now(),
  );
  for (const r of sync.removed) logger.warn({ target: r.id, url: r.url, dropped: r.dropped }, 'forwarding target removed');
  const owner = `${process.pid}-${randomBytes(6).toString('hex')}`;
  const loops = targets.map((t) => new DeliveryLoop(database, t, config, logger, owner, now));
  for (const l of loops) l.start();
  if (targets.length) logger.info({ targets: targets.map((t) => t.shown) }, 'forwarding to GLPI');
  return { stop: async () => void (await Promise.all(loops.map((l) => l.stop()))) };
}

class DeliveryLoop {
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private inFlight: AbortController | undefined;
  /** Consecutive failed attempts: the loop's own pause grows with them. */
  private failures = 0;

  constructor(
    private readonly database: Database,
    private readonly target: Target,
    private readonly config: ForwardConfig,
    private readonly logger: Logger,
    private readonly owner: string,
    private readonly now: () => number,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.inFlight?.abort();
    clearTimeout(this.timer);
    this.wake?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let wait = this.config.pollMs;
      try {
        const claimed = await claimDue(this.database.db, this.target.id, this.owner, this.now(), 2 * this.config.timeoutMs, 16);
        if (claimed.length > 0) wait = await this.deliverAll(claimed);
      } catch (err) {
        // The database is away: nothing is lost (rows stay), try again later.
        this.logger.warn({ target: this.target.id, err: isDatabaseFault(err) ? 'database unavailable' : String(err) }, 'forwarding paused');
        wait = backoffMs(++this.failures, Math.random, 1000, 30_000);
      }
      if (wait > 0) await this.sleep(wait);
    }
  }

  /** Delivers a claimed batch in order; on the first failure gives the rest back. Returns the pause before the next claim. */
  private async deliverAll(claimed: Claimed[]): Promise<number> {
    const db = this.database.db;
    for (let i = 0; i < claimed.length; i++) {
      const row = claimed[i]!;
      if (this.stopped) {
        await release(db, claimed.slice(i), this.owner);
        return 0;
      }
      const error = await this.post(row);
      if (error === undefined) {
        this.failures = 0;
        await markDelivered(db, this.target.id, row, this.owner, this.now());
        continue;
      }
      if (this.stopped) {
        await release(db, claimed.slice(i), this.owner);
        return 0;
      }
      this.failures++;
      await markFailed(
        db,
        this.target.id,
        row,
        this.owner,
        this.now(),
        backoffMs(row.attempts + 1, Math.random, 1000, this.config.retryMaxMs),
        error,
      );
      await release(db, claimed.slice(i + 1), this.owner);
      this.logger.warn({ target: this.target.id, url: this.target.shown, error, attempts: row.attempts + 1 }, 'forwarding failed');
      return backoffMs(this.failures, Math.random, 500, Math.min(this.config.retryMaxMs, 60_000));
    }
    return 0; // more may be due: claim again at once
  }

  /** One POST; undefined when the target took it, else a short phrase (no URL, no body, no secret). */
  private post(row: Claimed): Promise<string | undefined> {
    const { url, authorization } = this.target;
    const raw = Buffer.from(row.body, 'utf8');
    const [body, contentType] =
      this.config.compression === 'zlib'
        ? [deflateSync(raw), 'application/x-compress-zlib']
        : this.config.compression === 'gzip'
          ? [gzipSync(raw), 'application/x-compress-gzip']
          : [raw, 'application/json'];
    const headers: Record<string, string> = {
      'Content-Type': contentType,
      'Content-Length': String(body.length),
      'GLPI-Agent-ID': glpiAgentUuid(row.agentId),
      'User-Agent': 'Latchkey-Forwarder (GLPI-Agent protocol)',
    };
    if (authorization) headers.Authorization = authorization;
    const abort = new AbortController();
    this.inFlight = abort;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<string | undefined>((resolve) => {
      const req = send(
        url,
        {
          method: 'POST',
          headers,
          signal: abort.signal,
          timeout: this.config.timeoutMs,
          ...(url.protocol === 'https:' ? { cert: this.config.cert, key: this.config.key, ca: this.config.ca } : {}),
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= 64 * 1024) chunks.push(c);
          });
          res.on('end', () => resolve(verdict(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
          res.on('error', () => resolve('response interrupted'));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(networkError(err)));
      req.end(body);
    }).finally(() => {
      if (this.inFlight === abort) this.inFlight = undefined;
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
      this.timer.unref();
    });
  }
}

/** GLPI answers 200 with `{"status":"ok"}` (or "pending"); an error answer says `"status":"error"`. */
function verdict(status: number, text: string): string | undefined {
  if (status < 200 || status > 299) return `HTTP ${status}`;
  try {
    const v = JSON.parse(text) as { status?: unknown };
    if (v && typeof v === 'object' && v.status === 'error') return 'GLPI answered status error';
  } catch {
    // Not JSON (an XML answer, or empty): a 2xx is taken as accepted.
  }
  return undefined;
}

function networkError(err: NodeJS.ErrnoException): string {
  if (err.name === 'AbortError') return 'aborted';
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ETIMEDOUT':
      return 'timeout';
    default: {
      if (err.message === 'timeout') return 'timeout';
      const code = typeof err.code === 'string' && /^[A-Z0-9_]{1,80}$/.test(err.code) ? err.code : undefined;
      // A refused client certificate or an untrusted endpoint says so (node's codes name no secret).
      if (code && /^ERR_(SSL|TLS)_|CERT|SIGNATURE/.test(code)) return `TLS handshake failed: ${code}`;
      return code ? `network error ${code}` : 'network error';
    }
  }
}
