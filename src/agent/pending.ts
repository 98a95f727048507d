// Envelopes a relay accepted for forwarding but whose server receipt the agent has not seen yet
// (spec §11). Each is kept in the state dir (pending/<mid>.json, 0600, atomic) until a receipt that
// verifies with the pinned server key and binds that exact envelope (§10) is collected from the
// relay (`GET /v1/receipts/{snd}/{mid}`); the relay cannot forge one. One still pending after
// RESEND_AFTER_MS is sent again (harmless: relays dedup on (snd, mid), the server on the message id).
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { parseEnvelope, type Envelope } from '../protocol/envelope.js';
import { envelopeBinding, verifyReceipt, type Receipt } from '../protocol/receipt.js';
import { mkdir } from 'node:fs/promises';
import { writeSecretFile } from '../node/fs-secure.js';
import { endpoint, exchange } from './http.js';
import type { AgentState } from './state.js';

const DIR = 'pending';
const MID = /^[A-Za-z0-9_-]{22}$/;
export const RESEND_AFTER_MS = 3600_000;

export interface PendingEnvelope {
  v: 1;
  envelope: Envelope;
  /** The relay that accepted it. */
  via: string;
  /** When the relay accepted it (ms, agent clock); moved forward on each resend. */
  queuedAt: number;
  /** The relay's signing kid, from its verified credential. */
  relay: string;
}

export async function savePending(dir: string, p: PendingEnvelope): Promise<void> {
  await mkdir(join(dir, DIR), { recursive: true, mode: 0o700 });
  await writeSecretFile(join(dir, DIR, `${parseEnvelope(p.envelope).header.mid}.json`), JSON.stringify(p));
}

export async function listPending(dir: string): Promise<PendingEnvelope[]> {
  const names = await readdir(join(dir, DIR)).catch(() => [] as string[]);
  const out: PendingEnvelope[] = [];
  for (const name of names) {
    if (!MID.test(name.replace(/\.json$/, ''))) continue;
    const text = await readFile(join(dir, DIR, name), 'utf8').catch(() => undefined);
    if (text !== undefined) out.push(JSON.parse(text) as PendingEnvelope);
  }
  return out.sort((a, b) => a.queuedAt - b.queuedAt);
}

async function removePending(dir: string, mid: string): Promise<void> {
  await rm(join(dir, DIR, `${mid}.json`), { force: true });
}

/**
 * Asks the relay for each pending envelope's receipt. A receipt that verifies (accepted, or a signed
 * rejection: either way the server judged this envelope) ends it; anything else leaves it pending.
 */
export async function collectReceipts(ctx: ProtocolContext, state: AgentState): Promise<{ receipt: Receipt; pending: PendingEnvelope }[]> {
  const done: { receipt: Receipt; pending: PendingEnvelope }[] = [];
  for (const p of await listPending(state.dir)) {
    const env = parseEnvelope(p.envelope);
    const expect = { mid: env.header.mid, snd: env.header.snd, env: envelopeBinding(env) };
    const answer = await exchange(
      endpoint(p.via, `/v1/receipts/${expect.snd}/${expect.mid}`),
      { method: 'GET' },
      { timeoutMs: 30_000 },
    ).catch(() => undefined);
    if (answer?.status !== 200) continue;
    try {
      const receipt = await verifyReceipt(ctx, state.server.signing, answer.json, expect, state.keys.agreement.privateKey);
      await removePending(state.dir, expect.mid);
      done.push({ receipt, pending: p });
    } catch {
      // not a receipt for this envelope that the server signed: keep waiting
    }
  }
  return done;
}

/** Drops a pending envelope once its receipt came by another way (a resend answered at once). */
export async function settlePending(dir: string, mid: string): Promise<void> {
  await removePending(dir, mid);
}
