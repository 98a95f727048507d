// `latchkey agent run`: send on an interval; on SIGTERM/SIGINT finish or abort and exit 0.
// Each cycle's inventory is sealed once and resent as is until the server answers it with a signed
// receipt (§10): an unsigned answer (unreachable, 5xx, a proxy's 401/403, a forged receipt) proves
// nothing, so the agent keeps its keys and retries with jittered exponential backoff (capped at the
// interval); a 429 is waited out as Retry-After says, then the same envelope is resent. A signed
// `replay_detected` bound to our envelope means an earlier attempt delivered it. A signed revocation
// stops the daemon (non-zero exit): there is nothing left to retry.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { utf8 } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { HttpError } from './http.js';
import { readInventory, sealInventory, SignedRejection, submitEnvelope } from './send.js';
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

/** The longest the agent waits on one Retry-After before trying again. */
const MAX_RETRY_AFTER_MS = 3600_000;

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
        const backoff = Math.min(interval, baseBackoff * 2 ** Math.min(attempt, 16));
        let wait = backoff / 2 + Math.random() * (backoff / 2);
        if (err instanceof SignedRejection) {
          if (err.code === 'replay_detected') {
            opts.log({ event: 'sent', messageId: err.signedReceipt.mid, note: 'delivered by an earlier attempt' });
            break;
          }
          if (err.code === 'agent_revoked' || err.code === 'key_revoked') {
            opts.log({ event: 'revoked', code: err.code, messageId: err.signedReceipt.mid });
            throw err;
          }
          if (err.code !== 'rate_limited') {
            opts.log({ event: 'rejected', code: err.code, messageId: err.signedReceipt.mid, signed: true });
            break;
          }
        } else if (!(err instanceof HttpError)) {
          opts.log({ event: 'rejected', code: (err as { code?: string }).code, error: (err as Error).message });
          break;
        }
        // Unproven, or a signed rate_limited: the same envelope again, after Retry-After if given.
        const retryAfter = (err as HttpError | SignedRejection).retryAfterSeconds;
        if (retryAfter !== undefined) wait = Math.max(wait, Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS) + Math.random() * 250);
        const hint = err instanceof HttpError ? err.hint : undefined;
        opts.log({ event: 'retry', code: err.code, ...(hint ? { hint } : {}), signed: err instanceof SignedRejection, ...(err instanceof HttpError && err.status ? { status: err.status } : {}), inMs: Math.round(wait), attempt: ++attempt });
        await sleep(wait, opts.signal);
      }
    }
    await sleep(interval, opts.signal);
  }
  opts.log({ event: 'stopped' });
}
