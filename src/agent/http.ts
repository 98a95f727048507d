// The agent's HTTP: JSON in, JSON out, bounded in time. A JSON error answer becomes a ProtocolError
// (spec codes) or an HttpError with the server's code; a network failure is `unreachable`.
// Nothing here is signed: messaging (send.ts) takes the raw answer from `exchange` and believes only
// a receipt that verifies with the pinned key, so a forward proxy on the way can drop or delay but
// never forge (see proxy.ts for how one is chosen).
import { concatBytes } from '../protocol/bytes.js';
import { PROTOCOL_ERROR_CODES, ProtocolError, type ProtocolErrorCode } from '../protocol/errors.js';
import { ProxyConfigError, transport } from './proxy.js';

export class HttpError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly retryAfterSeconds?: number,
    /** The code an unsigned answer claimed: a hint, never acted on. */
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface RequestOptions {
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export async function getJson(url: string, opts: RequestOptions = {}): Promise<unknown> {
  return request(url, { method: 'GET' }, opts);
}

export async function postJson(url: string, body: unknown, opts: RequestOptions = {}): Promise<unknown> {
  return request(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }, opts);
}

/** An HTTP answer as it came: status, parsed JSON (undefined if none) and Retry-After in seconds. */
export interface HttpAnswer {
  status: number;
  statusText: string;
  json: unknown;
  retryAfterSeconds?: number;
}

/** One request; only a network failure or timeout throws (`unreachable`). */
export async function exchange(url: string, init: RequestInit, opts: RequestOptions = {}): Promise<HttpAnswer> {
  let res: Response;
  const { fetch, proxied } = await transport().catch((err: unknown) => {
    throw err instanceof ProxyConfigError ? new HttpError(err.code, err.message) : err;
  });
  try {
    res = await fetch(url, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>), ...opts.headers },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? 'timed out' : 'connection failed';
    throw new HttpError('unreachable', `${new URL(url).origin} ${reason}${proxied(url) ? ' (a proxy is configured)' : ''}`);
  }
  let text: string;
  try {
    text = await readBounded(res, MAX_ANSWER_BYTES);
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError('unreachable', `${new URL(url).origin} closed the connection`);
  }
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const answer: HttpAnswer = { status: res.status, statusText: res.statusText, json };
  const retry = retryAfterSeconds(res.headers.get('retry-after'), Date.now());
  if (retry !== undefined) answer.retryAfterSeconds = retry;
  return answer;
}

/** Every answer the agent expects (receipts, enroll responses, discovery) is a few KB. */
const MAX_ANSWER_BYTES = 1 << 20;

/** The body as text, refusing (bad_response) one larger than `max`: whoever answers cannot flood us. */
async function readBounded(res: Response, max: number): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw new HttpError('bad_response', `answer larger than ${max} bytes`, res.status);
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(concatBytes(...chunks));
}

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date; undefined when absent or unreadable.
 * Capped at one day: whoever sends it cannot park the agent for longer.
 */
export function retryAfterSeconds(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  const seconds = /^\d{1,10}$/.test(v) ? Number(v) : Math.ceil((Date.parse(v) - nowMs) / 1000);
  if (!Number.isFinite(seconds)) return undefined;
  return Math.min(Math.max(seconds, 0), 86_400);
}

export async function request(url: string, init: RequestInit, opts: RequestOptions = {}): Promise<unknown> {
  const { status, statusText, json, retryAfterSeconds: retry } = await exchange(url, init, opts);
  if (status >= 200 && status < 300) {
    if (json === undefined) throw new HttpError('bad_response', `non-JSON answer from ${new URL(url).origin}`, status);
    return json;
  }
  const error = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? error.code : `http_${status}`;
  const message = typeof error?.message === 'string' ? error.message.slice(0, 300) : statusText;
  if ((PROTOCOL_ERROR_CODES as readonly string[]).includes(code))
    throw new ProtocolError(code as ProtocolErrorCode, message, retry === undefined ? {} : { retryAfterSeconds: retry });
  throw new HttpError(code, message, status, retry);
}

/** Joins a base URL and a path without losing a base path (relays may live under a prefix). */
export function endpoint(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path}`;
}
