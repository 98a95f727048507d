// Sealing and sending inventories, and checking what the server answers. Nothing in a receipt is
// believed (or acted on) before its signature verifies against the pinned server key and its binding
// names the exact envelope sent; an unsigned answer (a status, an error code) is only a hint.
import { readFile } from 'node:fs/promises';
import { utf8 } from '../protocol/bytes.js';
import { credentialKid, verifyCredential } from '../protocol/credential.js';
import { fromB64uExact } from '../protocol/bytes.js';
import { verifyRelayAccept, type RelayAccept } from '../protocol/relay-accept.js';
import { savePending, settlePending } from './pending.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { parseEnvelope, sealEnvelope, type Envelope } from '../protocol/envelope.js';
import { ProtocolError, type ProtocolErrorCode } from '../protocol/errors.js';
import { envelopeBinding, verifyReceipt, type Receipt } from '../protocol/receipt.js';
import { endpoint, exchange, HttpError, type HttpAnswer } from './http.js';
import { renewAgent } from './renew.js';
import { catchUpServerKeys, followServerKeyDirective } from './server-keys.js';
import { loadState, nextCounter, saveAgentRecord, type AgentState } from './state.js';

/** Reads an inventory file: it must be JSON (the server validates it against the GLPI schema). */
export async function readInventory(path: string): Promise<Uint8Array> {
  const text = await readFile(path, 'utf8');
  if (text.trimStart().startsWith('<')) {
    throw new ProtocolError('payload_invalid', "GLPI native JSON expected (XML agents go through a relay's legacy listener)");
  }
  try {
    JSON.parse(text);
  } catch {
    throw new ProtocolError('payload_invalid', `${path} is not JSON`);
  }
  return utf8(text);
}

export async function sealInventory(ctx: ProtocolContext, state: AgentState, inventory: Uint8Array): Promise<Envelope> {
  const { envelope } = await sealEnvelope(ctx, {
    sender: state.keys,
    recipient: state.server.agreement,
    type: 'inventory',
    contentType: 'application/json',
    contentEncoding: 'gzip',
    counter: await nextCounter(state.dir, ctx.now()),
    plaintext: await gzip(inventory),
    // A provisioned agent (import, key request: spec §20) has none until its first renewal.
    credential: state.agent.credential || undefined,
  });
  return envelope;
}

/** gzip with the Web API every runtime has (CompressionStream), so sealing needs no node:zlib. */
async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export interface SendOutcome {
  receipt: Receipt;
}

/**
 * The server refused this exact envelope, and signed it: a receipt that verifies with the pinned key
 * and is bound to the envelope we sent (§10). The only refusal the agent acts on.
 */
export class SignedRejection extends ProtocolError {
  constructor(
    code: ProtocolErrorCode,
    readonly signedReceipt: Receipt,
    /** From the (unsigned) Retry-After header: when to try again, a hint. */
    retryAfterSeconds?: number,
  ) {
    super(code, undefined, retryAfterSeconds === undefined ? {} : { retryAfterSeconds });
    this.name = 'SignedRejection';
  }
}

/**
 * Submits one envelope (to the server, or a relay with `via`) and believes only a signed receipt:
 * the receipt (the 200 body, or `receipt` beside an error) is verified with the pinned server key
 * and must be bound to this envelope before anything in it, or the HTTP status, is believed.
 * - signed `accepted`: returns it (directives applied);
 * - signed `rejected`: throws SignedRejection(code);
 * - anything else (no receipt, a forged or someone else's receipt, a proxy's 401/403, a 5xx, a 429):
 *   throws HttpError, whose code (`unsigned_answer`, `receipt_invalid`, `unreachable`) says it proves
 *   nothing; the code the answer claimed is only in `hint`. Callers keep their keys and retry.
 */
export async function submitEnvelope(ctx: ProtocolContext, state: AgentState, envelope: Envelope, via?: string): Promise<SendOutcome> {
  const parsed = parseEnvelope(envelope);
  const expect = { mid: parsed.header.mid, snd: parsed.header.snd, env: envelopeBinding(parsed) };
  const url = endpoint(via ?? state.agent.serverUrl, '/v1/messages');
  const answer = await exchange(
    url,
    { method: 'POST', body: JSON.stringify(envelope), headers: { 'content-type': 'application/json' } },
    { timeoutMs: 60_000 },
  );
  if (via !== undefined && answer.status === 202 && (answer.json as { status?: unknown } | undefined)?.status === 'queued') {
    const accept = await relayAcceptance(ctx, state, answer, expect, via);
    await savePending(state.dir, { v: 1, envelope, via, queuedAt: ctx.now(), relay: accept.relay });
    throw new QueuedAtRelay(accept, via);
  }
  const ok = answer.status >= 200 && answer.status < 300;
  const signed = ok ? answer.json : (answer.json as { receipt?: unknown } | undefined)?.receipt;
  let receipt: Receipt | undefined;
  if (signed !== undefined) {
    try {
      receipt = await verifyReceipt(ctx, state.server.signing, signed, expect, state.keys.agreement.privateKey);
    } catch {
      await serverKeyMoved(ctx, state, answer);
      throw unproven('receipt_invalid', 'the receipt does not verify with the pinned server key for this envelope', answer);
    }
  }
  if (!receipt) {
    await serverKeyMoved(ctx, state, answer);
    throw unproven('unsigned_answer', 'an answer without a signed receipt proves nothing', answer);
  }
  if (via !== undefined) await settlePending(state.dir, parsed.header.mid);
  if (receipt.status === 'rejected') throw new SignedRejection(receipt.code ?? 'payload_invalid', receipt, answer.retryAfterSeconds);
  await applyDirectives(ctx, state, receipt);
  return { receipt };
}

/**
 * A relay accepted the envelope for forwarding (spec §11): it wrote it durably and will forward it;
 * the server's receipt is collected later (pending.ts). Not a failure: `agent send --via` exits 0.
 */
export class QueuedAtRelay extends Error {
  constructor(
    readonly accept: RelayAccept,
    readonly via: string,
  ) {
    super(`queued at relay ${accept.relay}`);
    this.name = 'QueuedAtRelay';
  }
}

/**
 * The relay's signed acceptance, believed only when the relay's credential (beside it) verifies with
 * the pinned server key, has role relay, and its key signed an acceptance naming this exact envelope.
 */
async function relayAcceptance(
  ctx: ProtocolContext,
  state: AgentState,
  answer: HttpAnswer,
  expect: { mid: string; snd: string; env: string },
  via: string,
): Promise<RelayAccept> {
  const body = answer.json as { accept?: unknown; credential?: unknown };
  const verify = async () => {
    if (typeof body.credential !== 'string') throw new Error('no credential');
    const claims = await verifyCredential(body.credential, state.server.signing, state.server.fingerprint, ctx.now());
    if (claims.role !== 'relay') throw new Error('not a relay');
    const relayKey = { publicKey: fromB64uExact(claims.cnf.sig, 32), kid: claims.cnf.sig_kid };
    return await verifyRelayAccept(ctx.crypto, relayKey, body.accept, expect);
  };
  try {
    return await verify();
  } catch {
    // The relay may have followed a server key rotation we have not (its credential names another
    // key set, §14): catch up along the endorsement chain from our pin, then check once more.
    const other = typeof body.credential === 'string' && credentialKid(body.credential) !== state.server.signing.kid;
    if (other && (await catchUpServerKeys(ctx, state, via).catch(() => false))) {
      try {
        return await verify();
      } catch {
        // refused below
      }
    }
    throw unproven(
      'receipt_invalid',
      "the relay's acceptance does not verify with a relay credential the pinned server key issued",
      answer,
    );
  }
}

/** An answer nobody signed: its claimed code is kept as a hint (sanitised), never believed. */
function unproven(code: 'receipt_invalid' | 'unsigned_answer', why: string, answer: HttpAnswer): HttpError {
  const claimed = (answer.json as { error?: { code?: unknown } } | undefined)?.error?.code;
  const hint = typeof claimed === 'string' && /^[a-z0-9_]{1,64}$/.test(claimed) ? claimed : undefined;
  return new HttpError(
    code,
    `HTTP ${answer.status}${hint ? ` (claims ${hint})` : ''}: ${why}`,
    answer.status,
    answer.retryAfterSeconds,
    hint,
  );
}

/**
 * The server claims (unsigned) that our pinned key set is no longer one it accepts: perhaps it
 * rotated while we were away (spec §14). Catch up from its published chain, walked from our pin;
 * when the pin moved, the envelope (sealed to the old keys) must be sealed again: ServerKeyMoved.
 */
async function serverKeyMoved(ctx: ProtocolContext, state: AgentState, answer: HttpAnswer): Promise<void> {
  const claimed = (answer.json as { error?: { code?: unknown } } | undefined)?.error?.code;
  if (claimed !== 'recipient_mismatch') return;
  const before = state.server.fingerprint;
  if (await catchUpServerKeys(ctx, state)) throw new ServerKeyMoved(before, state.server.fingerprint);
}

/** The pinned server key set moved along its endorsement chain: seal the message again and resend. */
export class ServerKeyMoved extends ProtocolError {
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    super('recipient_mismatch', `the server key moved from ${from} to ${to} (endorsed); seal the message again`);
    this.name = 'ServerKeyMoved';
  }
}

/** Acts on verified directives: a new send interval is kept in the state dir; a new server key is pinned if it chains from ours. */
async function applyDirectives(ctx: ProtocolContext, state: AgentState, receipt: Receipt): Promise<void> {
  const d = receipt.directives;
  if (!d) return;
  if (d.serverKey) await followServerKeyDirective(ctx, state, d.serverKey);
  if (
    typeof d.sendIntervalSeconds === 'number' &&
    d.sendIntervalSeconds >= 60 &&
    d.sendIntervalSeconds !== state.agent.sendIntervalSeconds
  ) {
    state.agent.sendIntervalSeconds = d.sendIntervalSeconds;
    await saveAgentRecord(state.dir, state.agent);
  }
}

export async function sendFile(ctx: ProtocolContext, stateDir: string, file: string, via?: string): Promise<SendOutcome> {
  return sendInventory(ctx, stateDir, await readInventory(file), via);
}

/** Seals and sends one inventory; after catching up with server key rotations, renews and sends again. */
export async function sendInventory(ctx: ProtocolContext, stateDir: string, inventory: Uint8Array, via?: string): Promise<SendOutcome> {
  const state = await loadState(ctx.crypto, stateDir);
  try {
    return await submitEnvelope(ctx, state, await sealInventory(ctx, state, inventory), via);
  } catch (err) {
    // A signed credential_invalid for a credential another key set issued: that set was dropped
    // after a rotation before we renewed.
    const stale =
      err instanceof SignedRejection &&
      err.code === 'credential_invalid' &&
      state.agent.credential !== '' &&
      credentialKid(state.agent.credential) !== state.server.signing.kid;
    if (!(err instanceof ServerKeyMoved) && !stale) throw err;
  }
  // Caught up with server key rotations: the key set our credential was issued under is no longer
  // accepted, so renew first (a renewal needs no credential), then send once more, sealed to the
  // key set now pinned.
  await renewAgent(ctx, stateDir, { via });
  const renewed = await loadState(ctx.crypto, stateDir);
  return submitEnvelope(ctx, renewed, await sealInventory(ctx, renewed, inventory), via);
}
