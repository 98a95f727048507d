// `latchkey agent renew` and the daemon's automatic renewal (spec/PROTOCOL.md §12), crash-safe:
//   1. the next key set is written to pending.json (0600, fsync, rename) BEFORE anything is sent, and
//      reused by every retry, so the server sees one renewal however often it is repeated;
//   2. a verified renew-response is written to renewed.json in one atomic rename (the journal);
//   3. keys.json and agent.json are then replaced and the journal and pending keys removed.
// A crash before 2 leaves the current key, still valid (and still accepted during the overlap if the
// server did renew: the retry gets the same answer). A crash after 2 is finished by the next load
// (applyRenewalJournal), so keys and credential never disagree. Only a server-signed answer makes
// the agent give up a key; a transient failure never does.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { b64u, fromB64uExact } from '../protocol/bytes.js';
import type { CryptoBackend, ProtocolContext } from '../protocol/crypto/types.js';
import { verifyCredential } from '../protocol/credential.js';
import { parseEnvelope, sealEnvelope } from '../protocol/envelope.js';
import { ProtocolError } from '../protocol/errors.js';
import { generateKeySet, keySetFromPrivate, type KeySet } from '../protocol/keys.js';
import { envelopeBinding, verifyReceipt } from '../protocol/receipt.js';
import { renewContent, verifyRenewResponse, type RenewResponseBody } from '../protocol/renewal.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { failpoint } from './failpoint.js';
import { endpoint, exchange, HttpError } from './http.js';
import { applyRenewalJournal, loadState, nextCounter, PENDING_KEYS, RENEWAL_JOURNAL, type AgentRecord, type AgentState } from './state.js';

/** The server refused the renewal in a signed answer: the only kind of refusal the agent believes. */
export class RenewRefused extends ProtocolError {
  readonly signed = true;
}

export interface RenewOutcome {
  agent: AgentRecord;
  previousSigKid: string;
  sigKid: string;
  /** The server had already renewed to these keys (a retry after a lost answer). */
  supersededUntil: number;
}

const keysJson = (k: KeySet) => ({ signing: b64u(k.signing.privateKey), agreement: b64u(k.agreement.privateKey) });
async function keysFrom(crypto: CryptoBackend, o: { signing: string; agreement: string }): Promise<KeySet> {
  return keySetFromPrivate({ crypto }, fromB64uExact(o.signing, 32), fromB64uExact(o.agreement, 32));
}

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
}

/** The next keys, made and persisted once per renewal, reused by every retry. */
async function pendingKeys(ctx: ProtocolContext, dir: string): Promise<KeySet> {
  const saved = await readJson(join(dir, PENDING_KEYS));
  if (saved) return keysFrom(ctx.crypto, saved as { signing: string; agreement: string });
  const next = await generateKeySet(ctx);
  await writeSecretFile(join(dir, PENDING_KEYS), `${JSON.stringify({ v: 1, ...keysJson(next) })}\n`);
  return next;
}

/** Renews now: the state dir ends with the new keys and credential, or unchanged. */
export async function renewAgent(ctx: ProtocolContext, dir: string, opts: { via?: string | undefined } = {}): Promise<RenewOutcome> {
  const state = await loadState(ctx.crypto, dir); // finishes a journaled renewal first
  const next = await pendingKeys(ctx, dir);
  const body = await requestRenewal(ctx, state, next, opts.via);
  const claims = await verifyCredential(body.credential, state.server.signing, state.server.fingerprint, ctx.now());
  if (claims.sub !== state.agent.agentId || claims.cnf.sig_kid !== next.signing.kid || claims.cnf.kx_kid !== next.agreement.kid) {
    throw new ProtocolError('credential_invalid', 'credential does not name this agent and its new keys');
  }
  const agent: AgentRecord = { ...state.agent, credential: body.credential, expiresAt: body.expiresAt };
  failpoint('renew:after-answer');
  await writeSecretFile(join(dir, RENEWAL_JOURNAL), `${JSON.stringify({ v: 1, keys: keysJson(next), agent })}\n`);
  failpoint('renew:after-journal');
  await applyRenewalJournal(ctx.crypto, dir);
  return { agent, previousSigKid: state.keys.signing.kid, sigKid: next.signing.kid, supersededUntil: body.supersededUntil };
}

/**
 * One renew request from the current key. A signed refusal (receipt) throws its code; anything
 * unsigned throws as the transport reported it (HttpError or an unproven ProtocolError hint).
 */
async function requestRenewal(ctx: ProtocolContext, state: AgentState, next: KeySet, via?: string): Promise<RenewResponseBody> {
  const { envelope, header } = await sealEnvelope(ctx, {
    sender: state.keys,
    recipient: state.server.agreement,
    type: 'renew',
    contentType: 'application/json',
    contentEncoding: 'identity',
    counter: await nextCounter(state.dir, ctx.now()),
    // The proofs name the message id, which sealEnvelope draws: content made from the header.
    plaintext: (h) => renewContent(ctx.crypto, h.snd, h.mid, next, state.server.agreement.publicKey),
    // A renewal needs no credential: a provisioned agent (spec §20) gets its first one here.
    credential: state.agent.credential || undefined,
  });
  const expect = { mid: header.mid, snd: header.snd, env: envelopeBinding(parseEnvelope(envelope)) };
  const url = endpoint(via ?? state.agent.serverUrl, '/v1/renew');
  failpoint('renew:before-send');
  const answer = await exchange(
    url,
    { method: 'POST', body: JSON.stringify(envelope), headers: { 'content-type': 'application/json' } },
    { timeoutMs: 60_000 },
  );
  failpoint('renew:after-send');
  if (answer.status === 200) return verifyRenewResponse(ctx, state.server.signing, answer.json, { ...expect, next });
  // Believed only when signed by the pinned key for this very request; otherwise a transient hint.
  const receipt = (answer.json as { receipt?: unknown } | undefined)?.receipt;
  if (receipt !== undefined) {
    const verified = await verifyReceipt(ctx, state.server.signing, receipt, expect, state.keys.agreement.privateKey);
    if (verified.status === 'rejected')
      throw new RenewRefused(
        verified.code ?? 'payload_invalid',
        undefined,
        answer.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: answer.retryAfterSeconds },
      );
  }
  const code = (answer.json as { error?: { code?: unknown } } | undefined)?.error?.code;
  throw new HttpError(
    typeof code === 'string' ? code : `http_${answer.status}`,
    `renewal not confirmed (HTTP ${answer.status})`,
    answer.status,
    answer.retryAfterSeconds,
  );
}

export const RENEW_FRACTION = 2 / 3;

/**
 * When the daemon should renew: once two thirds of the credential's lifetime have passed, plus a
 * per-agent jitter of up to 5 % of the lifetime, so a fleet enrolled in the same hour spreads out.
 */
export function renewDueAt(issuedAtMs: number, expiresAtMs: number, jitter: number): number {
  const life = Math.max(0, expiresAtMs - issuedAtMs);
  return issuedAtMs + life * RENEW_FRACTION + life * 0.05 * Math.min(Math.max(jitter, 0), 1);
}

/** A stable number in [0, 1) per agent key, so agents enrolled together renew at different times. */
export function renewJitter(sigKid: string): number {
  return createHash('sha256').update('latchkey/1 renew-jitter\0').update(sigKid).digest().readUInt32BE(0) / 2 ** 32;
}

/** The credential's issue and expiry times (ms), from its claims (verified when it was received). */
export function credentialTimes(agent: AgentRecord): { issuedAt: number; expiresAt: number } {
  try {
    const { iat, exp } = decodeJwt(agent.credential);
    if (typeof iat === 'number' && typeof exp === 'number' && exp > iat) return { issuedAt: iat * 1000, expiresAt: exp * 1000 };
  } catch {
    // fall through: the record's expiry alone, renewing early rather than late
  }
  return { issuedAt: agent.expiresAt - 30 * 86_400_000, expiresAt: agent.expiresAt };
}

/** When this agent's renewal falls due (ms since the epoch). */
export function agentRenewDueAt(state: AgentState): number {
  const { issuedAt, expiresAt } = credentialTimes(state.agent);
  return renewDueAt(issuedAt, expiresAt, renewJitter(state.keys.signing.kid));
}

/** A renewal was started (next keys persisted) and not finished: it is to be completed at once. */
export async function renewalInProgress(dir: string): Promise<boolean> {
  return stat(join(dir, PENDING_KEYS)).then(
    () => true,
    () => false,
  );
}
