// `latchkey agent run`: send on an interval plus a random splay; on SIGTERM/SIGINT finish or abort and exit 0.
// Each cycle's inventory is sealed once and resent as is until the server answers it with a signed
// receipt (§10): an unsigned answer (unreachable, 5xx, a proxy's 401/403, a forged receipt) proves
// nothing, so the agent keeps its keys and retries with jittered exponential backoff (capped at the
// interval); a 429 is waited out as Retry-After says, then the same envelope is resent. A signed
// `replay_detected` bound to our envelope means an earlier attempt delivered it. A signed revocation
// stops the daemon (non-zero exit): there is nothing left to retry.
// Renewal (§12): at the start of a cycle once two thirds of the credential's lifetime have passed
// (plus a stable per-agent jitter), at once when a verified receipt carries `renewNow` or a signed
// `key_expired` answers a send, and at once when a renewal was started and not finished (a crash).
// After a renewal the cycle reloads the state and sends with the new keys. A failed renewal that is
// not a signed refusal never drops a key: it is retried on later cycles with exponential backoff,
// and from 7 days before expiry each cycle logs a warning while it keeps failing. A signed refusal
// saying revoked stops the daemon; a signed `key_expired` too (the agent needs a new token).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { utf8 } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { HttpError } from './http.js';
import { agentRenewDueAt, renewAgent, RenewRefused, renewalInProgress } from './renew.js';
import { collectReceipts, listPending, RESEND_AFTER_MS } from './pending.js';
import { QueuedAtRelay, readInventory, sealInventory, ServerKeyMoved, SignedRejection, submitEnvelope } from './send.js';
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
  /** Each wait between cycles is the interval plus a random 0..splay (a fleet started together spreads out). */
  splaySeconds?: number | undefined;
  /** Without splaySeconds: splay as this fraction of the interval in force (the server may set it). */
  splayFraction?: number | undefined;
  /** The first send waits a random 0..startSplay (default 0: at once). */
  startSplaySeconds?: number | undefined;
}

/** The interval plus its random splay, in ms. */
export function nextWait(opts: DaemonOptions, intervalMs: number): number {
  const splayMs = opts.splaySeconds !== undefined ? opts.splaySeconds * 1000 : intervalMs * (opts.splayFraction ?? 0);
  return intervalMs + Math.floor(Math.random() * splayMs);
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
/** The longest a failing renewal waits before it is tried again. */
const MAX_RENEW_BACKOFF_MS = 6 * 3600_000;
/** From this long before expiry, a renewal that keeps failing is logged as a warning each cycle. */
export const RENEW_WARN_BEFORE_MS = 7 * 86_400_000;

/** The daemon's renewal bookkeeping (per process: a restart simply tries again). */
interface RenewalState {
  /** A verified receipt said `renewNow`, or a signed `key_expired` answered a send. */
  requested: boolean;
  failures: number;
  nextAttemptAt: number;
}

/** The agent needs a new enrollment token: the server signed that its key has expired. */
export class NeedsNewToken extends RenewRefused {}

/**
 * Renews when due (see the header). Throws only on a signed refusal that leaves nothing to retry:
 * revoked (RenewRefused) or expired (NeedsNewToken).
 */
async function renewIfDue(ctx: ProtocolContext, opts: DaemonOptions, r: RenewalState, intervalMs: number, warn = true): Promise<void> {
  const state = await loadState(ctx.crypto, opts.stateDir);
  const now = ctx.now();
  const reason = (await renewalInProgress(opts.stateDir))
    ? 'resume'
    : r.requested
      ? 'renewNow'
      : now >= agentRenewDueAt(state)
        ? 'due'
        : undefined;
  if (reason && now >= r.nextAttemptAt) {
    try {
      const out = await renewAgent(ctx, opts.stateDir, { via: opts.via });
      Object.assign(r, { requested: false, failures: 0, nextAttemptAt: 0 });
      opts.log({
        event: 'renewed',
        reason,
        keyId: out.sigKid,
        previousKeyId: out.previousSigKid,
        expiresAt: new Date(out.agent.expiresAt).toISOString(),
      });
      return;
    } catch (err) {
      if (err instanceof RenewRefused && (err.code === 'agent_revoked' || err.code === 'key_revoked')) {
        opts.log({ event: 'revoked', code: err.code, during: 'renew' });
        throw err;
      }
      if (err instanceof RenewRefused && err.code === 'key_expired') {
        opts.log({ event: 'expired', code: err.code, during: 'renew' });
        throw new NeedsNewToken(
          'key_expired',
          "the server signed that this agent's key has expired and cannot be renewed: enroll it again with a new token (latchkey agent enroll --force)",
        );
      }
      if (!(err instanceof RenewRefused || err instanceof HttpError || (err as { code?: unknown }).code !== undefined)) throw err;
      // Unproven (or a signed refusal worth retrying): keep every key, try again later.
      r.failures++;
      const backoff = Math.min(intervalMs * 2 ** Math.min(r.failures - 1, 16), MAX_RENEW_BACKOFF_MS);
      let wait = backoff / 2 + Math.random() * (backoff / 2);
      const retryAfter = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (retryAfter !== undefined) wait = Math.max(wait, Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS));
      r.nextAttemptAt = now + wait;
      const hint = err instanceof HttpError ? err.hint : undefined;
      const status = err instanceof HttpError ? err.status : undefined;
      opts.log({
        event: 'renew_retry',
        reason,
        code: (err as { code?: string }).code,
        ...(hint ? { hint } : {}),
        ...(status ? { status } : {}),
        signed: err instanceof RenewRefused,
        inMs: Math.round(wait),
        attempt: r.failures,
      });
    }
  }
  const left = state.agent.expiresAt - now;
  if (warn && r.failures > 0 && left <= RENEW_WARN_BEFORE_MS) {
    opts.log({
      event: 'renew_failing',
      level: 'warn',
      expiresAt: new Date(state.agent.expiresAt).toISOString(),
      daysLeft: Math.round((left / 86_400_000) * 10) / 10,
      failures: r.failures,
    });
  }
}

/**
 * Envelopes a relay queued (spec §11): collect their server receipts from the relay, and send again
 * those still without one after RESEND_AFTER_MS. Failures leave them pending for the next cycle.
 */
async function collectPending(ctx: ProtocolContext, opts: DaemonOptions): Promise<void> {
  const state = await loadState(ctx.crypto, opts.stateDir);
  for (const { receipt } of await collectReceipts(ctx, state)) {
    opts.log({
      event: 'sent',
      messageId: receipt.mid,
      status: receipt.status,
      ...(receipt.code ? { code: receipt.code } : {}),
      note: 'receipt collected from the relay',
    });
  }
  for (const p of await listPending(opts.stateDir)) {
    if (ctx.now() - p.queuedAt < RESEND_AFTER_MS) continue;
    try {
      const { receipt } = await submitEnvelope(ctx, state, p.envelope, p.via);
      opts.log({ event: 'sent', messageId: receipt.mid, status: receipt.status, note: 'sent again through the relay' });
    } catch (err) {
      if (!(err instanceof QueuedAtRelay)) opts.log({ event: 'pending', code: (err as { code?: string }).code });
    }
  }
}

export async function runDaemon(ctx: ProtocolContext, opts: DaemonOptions): Promise<void> {
  const baseBackoff = 1000;
  const renewal: RenewalState = { requested: false, failures: 0, nextAttemptAt: 0 };
  // Cycles in a row cut short because the server's key set moved (spec §14); one re-seal at once.
  let moved = 0;
  if (opts.startSplaySeconds) await sleep(Math.floor(Math.random() * opts.startSplaySeconds * 1000), opts.signal);
  while (!opts.signal.aborted) {
    const before = await loadState(ctx.crypto, opts.stateDir);
    await renewIfDue(ctx, opts, renewal, (before.agent.sendIntervalSeconds ?? opts.intervalSeconds) * 1000);
    await collectPending(ctx, opts).catch((err: unknown) => opts.log({ event: 'pending', error: (err as Error).message }));
    const state = await loadState(ctx.crypto, opts.stateDir); // the new keys after a renewal
    const interval = (state.agent.sendIntervalSeconds ?? opts.intervalSeconds) * 1000;
    let attempt = 0;
    // One inventory per cycle, sealed once: a retry resends the same envelope (the server's
    // replay check makes a duplicate delivery harmless).
    let envelope;
    try {
      envelope = await sealInventory(ctx, state, await collect(opts));
    } catch (err) {
      opts.log({ event: 'collect_failed', error: (err as Error).message });
      await sleep(nextWait(opts, interval), opts.signal);
      continue;
    }
    let reseal = false;
    while (!opts.signal.aborted) {
      try {
        const { receipt } = await submitEnvelope(ctx, state, envelope, opts.via);
        moved = 0;
        opts.log({
          event: 'sent',
          messageId: receipt.mid,
          status: receipt.status,
          ...(receipt.directives?.renewNow ? { renewNow: true } : {}),
        });
        if (receipt.directives?.renewNow) {
          renewal.requested = true;
          await renewIfDue(ctx, opts, renewal, interval, false); // the cycle's warning is logged already
        }
        break;
      } catch (err) {
        if (err instanceof QueuedAtRelay) {
          // Durably accepted by the relay: the receipt is collected on a later cycle.
          opts.log({ event: 'queued', messageId: err.accept.mid, relay: err.accept.relay });
          break;
        }
        const backoff = Math.min(interval, baseBackoff * 2 ** Math.min(attempt, 16));
        let wait = backoff / 2 + Math.random() * (backoff / 2);
        // The server rotated its keys while we were away: the pin moved along the endorsed chain
        // (the envelope was sealed to the old keys), or a signed credential_invalid says the key set
        // that issued our credential is gone. Renew (which needs no credential), seal again, resend.
        if (err instanceof ServerKeyMoved || (err instanceof SignedRejection && err.code === 'credential_invalid')) {
          opts.log({ event: 'server_key_moved', code: err.code });
          renewal.requested = true;
          await renewIfDue(ctx, opts, renewal, interval, false);
          reseal = moved++ === 0;
          break;
        }
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
            if (err.code === 'key_expired') {
              // Renew now: a signed key_expired on renewal stops the daemon (a new token is needed).
              renewal.requested = true;
              await renewIfDue(ctx, opts, renewal, interval);
            }
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
        opts.log({
          event: 'retry',
          code: err.code,
          ...(hint ? { hint } : {}),
          signed: err instanceof SignedRejection,
          ...(err instanceof HttpError && err.status ? { status: err.status } : {}),
          inMs: Math.round(wait),
          attempt: ++attempt,
        });
        await sleep(wait, opts.signal);
      }
    }
    if (reseal) continue; // this cycle's inventory, sealed to the key set now pinned
    await sleep(nextWait(opts, interval), opts.signal);
  }
  opts.log({ event: 'stopped' });
}
