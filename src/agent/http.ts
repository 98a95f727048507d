// The agent's HTTP: JSON in, JSON out, bounded in time. A JSON error answer becomes a ProtocolError
// (spec codes) or an HttpError with the server's code; a network failure is `unreachable`.
import { PROTOCOL_ERROR_CODES, ProtocolError, type ProtocolErrorCode } from '../protocol/errors.js';

export class HttpError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly retryAfterSeconds?: number,
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

/** A completed exchange, whatever its status: for callers that verify signed error bodies themselves. */
export interface RawAnswer {
  status: number;
  json: unknown;
  retryAfterSeconds: number | undefined;
}

export async function requestRaw(url: string, init: RequestInit, opts: RequestOptions = {}): Promise<RawAnswer> {
  let res: Response;
  try {
    res = await fetch(url, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>), ...opts.headers },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? 'timed out' : 'connection failed';
    throw new HttpError('unreachable', `${new URL(url).origin} ${reason}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const retry = res.headers.get('retry-after');
  return { status: res.status, json, retryAfterSeconds: retry !== null && /^[0-9]{1,9}$/.test(retry) ? Number(retry) : undefined };
}

export async function request(url: string, init: RequestInit, opts: RequestOptions = {}): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      ...init,
      headers: { accept: 'application/json', ...(init.headers as Record<string, string>), ...opts.headers },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? 'timed out' : 'connection failed';
    throw new HttpError('unreachable', `${new URL(url).origin} ${reason}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.ok) {
    if (json === undefined) throw new HttpError('bad_response', `non-JSON answer from ${new URL(url).origin}`, res.status);
    return json;
  }
  const error = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? error.code : `http_${res.status}`;
  const message = typeof error?.message === 'string' ? error.message.slice(0, 300) : res.statusText;
  const retryHeader = res.headers.get('retry-after');
  const retry = retryHeader === null ? undefined : Number(retryHeader);
  const retryAfterSeconds = retry !== undefined && Number.isFinite(retry) ? retry : undefined;
  if ((PROTOCOL_ERROR_CODES as readonly string[]).includes(code)) throw new ProtocolError(code as ProtocolErrorCode, message, { retryAfterSeconds });
  throw new HttpError(code, message, res.status, retryAfterSeconds);
}

/** Joins a base URL and a path without losing a base path (relays may live under a prefix). */
export function endpoint(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}${path}`;
}
