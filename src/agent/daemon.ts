// `latchkey agent run`: send on an interval; while the server is unreachable, retry with jittered
// exponential backoff (capped at the interval); on SIGTERM/SIGINT finish or abort and exit 0.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { utf8 } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { ProtocolError } from '../protocol/errors.js';
import { HttpError } from './http.js';
import { readInventory, sealInventory, submitEnvelope } from './send.js';
import { loadState } from './state.js';

const run = promisify(execFile);

export interface DaemonOptions {
  stateDir: string;
  file?: string | undefined;
  command?: string | undefined;
  intervalSeconds: number;
  via?: string | undefined;
  log: (event: Record<string, unknown>) => void;
  signal: AbortSignal;
}

/** Sleeps, or returns early when aborted. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

async function collect(opts: DaemonOptions): Promise<Uint8Array> {
  if (opts.file) return readInventory(opts.file);
  const { stdout } = await run('/bin/sh', ['-c', opts.command!], { maxBuffer: 64 * 1024 * 1024, signal: opts.signal });
  JSON.parse(stdout);
  return utf8(stdout);
}

const transient = (err: unknown) => err instanceof HttpError && (err.code === 'unreachable' || err.code === 'rate_limited' || (err.status ?? 0) >= 500);

export async function runDaemon(ctx: ProtocolContext, opts: DaemonOptions): Promise<void> {
  const baseBackoff = 1000;
  while (!opts.signal.aborted) {
    const state = await loadState(ctx.crypto, opts.stateDir);
    const interval = (state.agent.sendIntervalSeconds ?? opts.intervalSeconds) * 1000;
    let attempt = 0;
    // One inventory per cycle, sealed once: a retry resends the same envelope (the server's
    // replay check makes a duplicate delivery harmless).
    let envelope;
    try {
      envelope = await sealInventory(ctx, state, await collect(opts));
    } catch (err) {
      opts.log({ event: 'collect_failed', error: (err as Error).message });
      await sleep(interval, opts.signal);
      continue;
    }
    while (!opts.signal.aborted) {
      try {
        const { receipt } = await submitEnvelope(ctx, state, envelope, opts.via);
        opts.log({ event: 'sent', messageId: receipt.mid, status: receipt.status });
        break;
      } catch (err) {
        if (err instanceof ProtocolError && err.code === 'replay_detected' && attempt > 0) {
          opts.log({ event: 'sent', note: 'delivered by an earlier attempt' });
          break;
        }
        if (!transient(err)) {
          opts.log({ event: 'rejected', code: (err as { code?: string }).code, error: (err as Error).message });
          break;
        }
        const backoff = Math.min(interval, baseBackoff * 2 ** Math.min(attempt, 16));
        const wait = backoff / 2 + Math.random() * (backoff / 2);
        opts.log({ event: 'retry', code: (err as HttpError).code, inMs: Math.round(wait), attempt: ++attempt });
        await sleep(wait, opts.signal);
      }
    }
    await sleep(interval, opts.signal);
  }
  opts.log({ event: 'stopped' });
}
