// Batch receipts (spec/PROTOCOL.md §10.1): one server signature answers a whole batch
// (POST /v1/messages {"envelopes":[…]}) instead of one per envelope.
//   B   = signed object (§9) of type "batch-receipt", body {"req","rat","results":[h_0,…,h_n-1]}
//   req = b64u(SHA-256(label("latchkey/1 batch-request") || the request body bytes as sent))
//   R_i = utf8(JSON {"i":i, then the members of a receipt body (§10)}), or for an item the server
//         did not judge (refused before its sender key was found) {"i","status":"refused","rat","code"}
//   h_i = b64u(SHA-256(label("latchkey/1 batch-result") || lp(R_i)))
// The answer is {"batchReceipts":[B,…],"results":[{"result":b64u(R_i),"error"?},…]}: one B per server
// key set the batch's envelopes addressed (one outside a key rotation), all over the same body.
// The sender checks B once (signature, req, count, every h_i, index and binding). One envelope's
// proof, handed on to its agent, is {"batchReceipts":[B,…],"result":b64u(R_i)}: the agent checks
// B and that h(R_i) is at position i; it learns nothing of the other results but their hashes.
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, fromB64u, label, lengthPrefixed, utf8 } from './bytes.js';
import type { CryptoBackend } from './crypto/types.js';
import { ProtocolError } from './errors.js';
import { asObject, parseJsonObject, str, uint, type JsonObject } from './json.js';
import { signObject, verifySignedObject, type SignedObject } from './signed.js';

export const BATCH_RECEIPT_TYPE = 'batch-receipt';
const REQUEST_LABEL = label('latchkey/1 batch-request');
const RESULT_LABEL = label('latchkey/1 batch-result');
/** A batch holds at most this many envelopes (§17). */
export const MAX_BATCH_ITEMS = 100;
/** Key sets a server accepts at once is small (previous, current, next): more signatures is a malformed answer. */
const MAX_SIGNERS = 8;

const bad = 'envelope_malformed' as const;

/** The backend's SHA-256 when it has one (node:crypto: a batch request is up to megabytes), else noble's. */
type Hashing = Pick<CryptoBackend, 'sha256'> | undefined;
const sha256Of = (c: Hashing, data: Uint8Array): Uint8Array => (c?.sha256 ?? sha256)(data);

/** req (above): binds the results to the exact request they answer. */
export const batchRequestDigest = (request: Uint8Array, c?: Hashing): Uint8Array => sha256Of(c, concatBytes(REQUEST_LABEL, request));

/** R_i (above): the index, then the receipt body's members (or refused's), in that order. */
export const batchResultBytes = (i: number, result: JsonObject): Uint8Array => utf8(JSON.stringify({ i, ...result }));

/** h_i's hash input and hash (above). */
export const batchResultDigestInput = (r: Uint8Array): Uint8Array => concatBytes(RESULT_LABEL, lengthPrefixed(r));
export const batchResultDigest = (r: Uint8Array, c?: Hashing): Uint8Array => sha256Of(c, batchResultDigestInput(r));

/** What a batch is answered with (§17). `error` is the unsigned, human-readable copy of a refusal. */
export interface BatchAnswer {
  batchReceipts: SignedObject[];
  results: { result: string; error?: { code: string; message: string } }[];
}

/** One envelope's share of a verified batch answer, as handed to its agent. */
export interface BatchProof {
  batchReceipts: SignedObject[];
  result: string;
}

/** Server: one batch receipt per signer (distinct key sets), all over the same body. */
export async function signBatchReceipts(
  c: CryptoBackend,
  signers: { privateKey: Uint8Array; kid: string }[],
  batch: { request: Uint8Array; rat: number; results: Uint8Array[] },
): Promise<SignedObject[]> {
  const body = {
    req: b64u(batchRequestDigest(batch.request, c)),
    rat: batch.rat,
    results: batch.results.map((r) => b64u(batchResultDigest(r, c))),
  };
  return Promise.all(signers.map((s) => signObject(c, s, BATCH_RECEIPT_TYPE, body)));
}

/** One result, verified: its text (for proofs) and its members (a receipt body, or refused's). */
export interface VerifiedBatchResult {
  text: string;
  body: JsonObject;
  status: 'accepted' | 'rejected' | 'refused';
  code?: string;
}

/** The kid a batch receipt in an answer names, if it is shaped like one (before any check). */
const kidOf = (b: unknown): string | undefined => {
  const kid = typeof b === 'object' && b !== null ? (b as { kid?: unknown }).kid : undefined;
  return typeof kid === 'string' ? kid : undefined;
};

/**
 * The distinct signing key ids an answer's `batchReceipts` name, for a sender to find the key sets
 * to verify with; none for a list that verifiedBatchBody refuses anyway (not a list, too many).
 */
export function batchReceiptKids(list: unknown): string[] {
  if (!Array.isArray(list) || list.length > MAX_SIGNERS) return [];
  return [...new Set(list.map(kidOf).filter((k): k is string => k !== undefined))];
}

/** The batch receipt signed by `server` among `list`, verified; its body's members checked for shape. */
async function verifiedBatchBody(
  c: CryptoBackend,
  server: { publicKey: Uint8Array; kid: string },
  list: unknown,
): Promise<{ req: string; rat: number; results: string[] }> {
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_SIGNERS) throw new ProtocolError(bad, 'batchReceipts must be a list');
  const mine = list.find((b) => kidOf(b) === server.kid);
  if (mine === undefined) throw new ProtocolError('signature_invalid', 'no batch receipt signed by the pinned server key');
  const b = await verifySignedObject(c, server, BATCH_RECEIPT_TYPE, mine);
  const results = b.results;
  if (!Array.isArray(results) || results.length === 0 || results.length > MAX_BATCH_ITEMS || results.some((h) => typeof h !== 'string'))
    throw new ProtocolError(bad, 'invalid batch receipt');
  return { req: str(b, 'req', bad, 64), rat: uint(b, 'rat', bad), results: results as string[] };
}

/** R_i from its text, checked against h_i at its own index `i` of `hashes`. */
function verifiedResult(text: unknown, hashes: string[], i?: number, c?: Hashing): VerifiedBatchResult {
  if (typeof text !== 'string' || text.length > 1 << 20) throw new ProtocolError(bad, 'result must be a string');
  const bytes = fromB64u(text, bad);
  const body = parseJsonObject(bytes, bad);
  const at = uint(body, 'i', bad);
  if ((i !== undefined && at !== i) || at >= hashes.length || hashes[at] !== b64u(batchResultDigest(bytes, c)))
    throw new ProtocolError('signature_invalid', 'result not covered by the batch receipt');
  const status = body.status;
  if (status !== 'accepted' && status !== 'rejected' && status !== 'refused') throw new ProtocolError(bad, 'invalid result status');
  if (status !== 'accepted' && typeof body.code !== 'string') throw new ProtocolError(bad, 'a refusal names its code');
  return { text, body, status, ...(typeof body.code === 'string' ? { code: body.code } : {}) };
}

/**
 * Sender (a relay): verifies a whole batch answer once: the batch receipt signed by the pinned
 * server key, that it answers exactly `request` (the body bytes sent), one result per item in order,
 * each covered by its hash, and every judged result bound to the envelope sent at its position.
 * Any failure refuses the whole answer (fail closed: nothing in it is believed).
 */
export async function verifyBatchAnswer(
  c: CryptoBackend,
  server: { publicKey: Uint8Array; kid: string },
  answer: unknown,
  sent: { request: Uint8Array; items: { mid: string; snd: string; env: string }[] },
): Promise<VerifiedBatchResult[]> {
  const a = asObject(answer, bad);
  const b = await verifiedBatchBody(c, server, a.batchReceipts);
  if (b.req !== b64u(batchRequestDigest(sent.request, c)))
    throw new ProtocolError('signature_invalid', 'the batch receipt answers another request');
  const listed: unknown = a.results;
  if (b.results.length !== sent.items.length || !Array.isArray(listed) || listed.length !== sent.items.length)
    throw new ProtocolError('signature_invalid', 'the batch receipt does not answer every envelope sent');
  return sent.items.map((expect, i) => {
    const r = verifiedResult(asObject(listed[i], bad).result, b.results, i, c);
    if (r.status !== 'refused') checkBinding(r.body, expect);
    return r;
  });
}

/** One envelope's proof from a verified answer: every batch receipt as received, and its result. */
export const batchProof = (answer: { batchReceipts: unknown }, r: VerifiedBatchResult): BatchProof => ({
  batchReceipts: answer.batchReceipts as SignedObject[],
  result: r.text,
});

/** Whether `input` has the shape of a batch proof rather than a signed receipt. */
export const isBatchProof = (input: unknown): boolean => typeof input === 'object' && input !== null && 'result' in input;

/**
 * Agent (or a relay given a proof by the relay above it): the batch receipt signed by the pinned key,
 * the result covered by it, a judgement (accepted or rejected) bound to `expect`. Returns the result
 * as a receipt body (§10), `i` removed.
 */
export async function verifyBatchProof(
  c: CryptoBackend,
  server: { publicKey: Uint8Array; kid: string },
  input: unknown,
  expect: { mid: string; snd: string; env: string },
): Promise<JsonObject> {
  const p = asObject(input, bad);
  const b = await verifiedBatchBody(c, server, p.batchReceipts);
  const r = verifiedResult(p.result, b.results);
  if (r.status === 'refused') throw new ProtocolError('signature_invalid', 'the server did not judge this envelope');
  checkBinding(r.body, expect);
  const { i: _i, ...receipt } = r.body;
  return receipt;
}

function checkBinding(body: JsonObject, expect: { mid: string; snd: string; env: string }): void {
  if (body.mid !== expect.mid || body.snd !== expect.snd || body.env !== expect.env)
    throw new ProtocolError('signature_invalid', 'result is for another message');
}
