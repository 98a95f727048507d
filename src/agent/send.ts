// Sealing and sending inventories, and checking what the server answers. Nothing in a receipt is
// believed (or acted on) before its signature verifies against the pinned server key.
import { readFile } from 'node:fs/promises';
import { utf8 } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { parseEnvelope, sealEnvelope, type Envelope } from '../protocol/envelope.js';
import { ProtocolError } from '../protocol/errors.js';
import { verifyReceipt, type Receipt } from '../protocol/receipt.js';
import { endpoint, HttpError, request } from './http.js';
import { loadState, nextCounter, saveAgentRecord, type AgentState } from './state.js';

/** Reads an inventory file: it must be JSON (the server validates it against the GLPI schema). */
export async function readInventory(path: string): Promise<Uint8Array> {
  const text = await readFile(path, 'utf8');
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
    credential: state.agent.credential,
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
 * Submits one envelope (to the server, or a relay with `via`) and verifies the signed receipt.
 * A rejection with a signed receipt throws ProtocolError(code); unsigned errors throw as they came.
 */
export async function submitEnvelope(ctx: ProtocolContext, state: AgentState, envelope: Envelope, via?: string): Promise<SendOutcome> {
  const { header } = parseEnvelope(envelope);
  const url = endpoint(via ?? state.agent.serverUrl, '/v1/messages');
  let answer: unknown;
  try {
    answer = await request(url, { method: 'POST', body: JSON.stringify(envelope), headers: { 'content-type': 'application/json' } }, { timeoutMs: 60_000 });
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw err instanceof HttpError ? err : new HttpError('unreachable', String(err));
  }
  const receipt = await verifyReceipt(ctx, state.server.signing, answer, { mid: header.mid, snd: header.snd }, state.keys.agreement.privateKey);
  if (receipt.status === 'rejected') throw new ProtocolError(receipt.code ?? 'payload_invalid');
  await applyDirectives(state, receipt);
  return { receipt };
}

/** Acts on verified directives: a new send interval is kept in the state dir. */
async function applyDirectives(state: AgentState, receipt: Receipt): Promise<void> {
  const d = receipt.directives;
  if (!d) return;
  if (typeof d.sendIntervalSeconds === 'number' && d.sendIntervalSeconds >= 60 && d.sendIntervalSeconds !== state.agent.sendIntervalSeconds) {
    state.agent.sendIntervalSeconds = d.sendIntervalSeconds;
    await saveAgentRecord(state.dir, state.agent);
  }
}

export async function sendFile(ctx: ProtocolContext, stateDir: string, file: string, via?: string): Promise<SendOutcome> {
  const state = await loadState(ctx.crypto, stateDir);
  return submitEnvelope(ctx, state, await sealInventory(ctx, state, await readInventory(file)), via);
}
