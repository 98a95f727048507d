// Batch receipts (spec §10.1): one signature answers a whole batch. The sender's one verification
// refuses the whole answer for any change (a result's field, their order, the request, the key);
// an agent's share verifies like a receipt and refuses another envelope's, a refused item, a moved one.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  batchProof,
  batchReceiptKids,
  batchResultBytes,
  signBatchReceipts,
  verifyBatchAnswer,
  verifyBatchProof,
  type BatchAnswer,
} from '../../src/protocol/batch-receipt.js';
import { b64u, fromB64u, fromUtf8, utf8 } from '../../src/protocol/bytes.js';
import { generateKeySet, type KeySet } from '../../src/protocol/keys.js';
import { receiptBody, verifyReceipt } from '../../src/protocol/receipt.js';
import { signObject, type SignedObject } from '../../src/protocol/signed.js';
import { backends } from '../helpers/backends.js';
import { codeOf, testContext } from '../helpers/protocol.js';

describe.each(backends)('batch receipts on %s', (_name, crypto) => {
  const ctx = testContext(crypto);
  let server: KeySet;
  let other: KeySet;
  let agent: KeySet;
  const request = utf8('{"envelopes":[…the exact bytes sent…]}');
  const items = [0, 1, 2].map((k) => ({
    mid: b64u(new Uint8Array(16).fill(k + 1)),
    snd: 'snd-kid',
    env: b64u(new Uint8Array(32).fill(k + 9)),
  }));
  let answer: BatchAnswer;

  /** A batch answer for `items`: accepted (with directives), rejected, refused (unjudged). */
  async function answerFor(signers: KeySet[], results?: Uint8Array[]): Promise<BatchAnswer> {
    results ??= [
      batchResultBytes(
        0,
        await receiptBody(
          ctx,
          { ...items[0]!, status: 'accepted', rat: 5, directives: { sendIntervalSeconds: 600 } },
          agent.agreement.publicKey,
        ),
      ),
      batchResultBytes(1, await receiptBody(ctx, { ...items[1]!, status: 'rejected', code: 'replay_detected', rat: 6 })),
      batchResultBytes(2, { status: 'refused', rat: 7, code: 'key_unknown' }),
    ];
    const batchReceipts = await signBatchReceipts(
      crypto,
      signers.map((s) => s.signing),
      { request, rat: 7, results },
    );
    return { batchReceipts, results: results.map((r) => ({ result: b64u(r) })) };
  }
  const verify = (a: unknown, over: Partial<{ request: Uint8Array; items: typeof items; key: KeySet }> = {}) =>
    verifyBatchAnswer(crypto, (over.key ?? server).signing, a, { request: over.request ?? request, items: over.items ?? items });
  /** R_i of `a` decoded, edited by `edit`, encoded again. */
  const edited = (a: BatchAnswer, i: number, edit: (r: Record<string, unknown>) => void): BatchAnswer => {
    const r = JSON.parse(fromUtf8(fromB64u(a.results[i]!.result))) as Record<string, unknown>;
    edit(r);
    const results = a.results.map((x, k) => (k === i ? { result: b64u(utf8(JSON.stringify(r))) } : x));
    return { ...a, results };
  };

  beforeAll(async () => {
    [server, other, agent] = [await generateKeySet(ctx), await generateKeySet(ctx), await generateKeySet(ctx)];
    answer = await answerFor([server]);
  });

  it('verifies once: every result, in order, with its status and code', async () => {
    const results = await verify(answer);
    expect(results.map((r) => [r.status, r.code])).toEqual([
      ['accepted', undefined],
      ['rejected', 'replay_detected'],
      ['refused', 'key_unknown'],
    ]);
    // Signed by two key sets (a rotation): a verifier picks the one it pinned.
    const both = await answerFor([other, server]);
    expect(both.batchReceipts).toHaveLength(2);
    expect(await codeOf(verify(both))).toBe('ok');
    expect(await codeOf(verify(both, { key: other }))).toBe('ok');
    // The kids a sender looks its key sets up by: each signer's once; none from what is not a list of receipts.
    expect(batchReceiptKids(both.batchReceipts)).toEqual([other.signing.kid, server.signing.kid]);
    expect(batchReceiptKids([...both.batchReceipts, both.batchReceipts[1], { kid: 7 }, null])).toEqual([
      other.signing.kid,
      server.signing.kid,
    ]);
    expect(batchReceiptKids(both.batchReceipts[0])).toEqual([]);
    expect(batchReceiptKids(Array.from({ length: 9 }, () => both.batchReceipts[0]))).toEqual([]);
  });

  it('refuses the whole answer: a tampered field of any result', async () => {
    for (const [i, field, value] of [
      [0, 'mid', items[1]!.mid],
      [0, 'snd', 'another-kid'],
      [0, 'env', items[1]!.env],
      [0, 'status', 'rejected'],
      [1, 'code', 'payload_invalid'],
      [1, 'status', 'accepted'],
      [2, 'code', 'payload_invalid'],
      [0, 'rat', 99],
      [0, 'i', 1],
    ] as const)
      expect(await codeOf(verify(edited(answer, i, (r) => (r[field] = value)))), `${i}.${field}`).toBe('signature_invalid');
  });

  it('refuses the whole answer: results reordered, dropped, added, or another request', async () => {
    const swapped = { ...answer, results: [answer.results[1]!, answer.results[0]!, answer.results[2]!] };
    expect(await codeOf(verify(swapped))).toBe('signature_invalid');
    expect(await codeOf(verify({ ...answer, results: answer.results.slice(0, 2) }))).toBe('signature_invalid');
    expect(await codeOf(verify(answer, { items: items.slice(0, 2) }))).toBe('signature_invalid');
    expect(await codeOf(verify(answer, { items: [items[1]!, items[0]!, items[2]!] }))).toBe('signature_invalid');
    expect(await codeOf(verify(answer, { request: utf8('{"envelopes":[]}') }))).toBe('signature_invalid');
    // Results signed for the right envelopes in another order: each R_i names its index.
    const reordered = await answerFor(
      [server],
      [1, 0, 2].map((k, at) => batchResultBytes(at, JSON.parse(fromUtf8(fromB64u(answer.results[k]!.result))) as Record<string, unknown>)),
    );
    expect(await codeOf(verify(reordered))).toBe('signature_invalid');
  });

  it('refuses the whole answer: another key, a forged or re-typed signature, a bad shape', async () => {
    expect(await codeOf(verify(answer, { key: other }))).toBe('signature_invalid');
    expect(await codeOf(verify(await answerFor([other])))).toBe('signature_invalid');
    const b = answer.batchReceipts[0]!;
    const flipped = { ...b, sig: b64u(fromB64u(b.sig).map((x, k) => (k === 0 ? x ^ 1 : x))) };
    expect(await codeOf(verify({ ...answer, batchReceipts: [flipped] }))).toBe('signature_invalid');
    // The same body signed as another type (a receipt) is not a batch receipt.
    const asReceipt: SignedObject = await signObject(crypto, server.signing, 'receipt', JSON.parse(fromUtf8(fromB64u(b.body))));
    expect(await codeOf(verify({ ...answer, batchReceipts: [asReceipt] }))).toBe('signature_invalid');
    expect(await codeOf(verify({ ...answer, batchReceipts: [] }))).toBe('envelope_malformed');
    expect(await codeOf(verify({ results: answer.results }))).toBe('envelope_malformed');
  });

  it("an agent's share verifies as a receipt, its directives opened; another's, a refused one or a moved one does not", async () => {
    const results = await verify(answer);
    const r = await verifyReceipt(ctx, server.signing, batchProof(answer, results[0]!), items[0]!, agent.agreement.privateKey);
    expect(r).toMatchObject({ ...items[0], status: 'accepted', rat: 5, directives: { sendIntervalSeconds: 600 } });
    const rejected = await verifyReceipt(ctx, server.signing, batchProof(answer, results[1]!), items[1]!, agent.agreement.privateKey);
    expect(rejected).toMatchObject({ status: 'rejected', code: 'replay_detected' });
    const proof = (k: number) => batchProof(answer, results[k]!);
    expect(await codeOf(verifyBatchProof(crypto, server.signing, proof(0), items[1]!))).toBe('signature_invalid');
    expect(await codeOf(verifyBatchProof(crypto, server.signing, proof(2), items[2]!))).toBe('signature_invalid');
    expect(await codeOf(verifyBatchProof(crypto, other.signing, proof(0), items[0]!))).toBe('signature_invalid');
    // R_0 claiming position 1: not the hash signed there.
    const moved = edited(answer, 0, (x) => (x.i = 1));
    expect(await codeOf(verifyBatchProof(crypto, server.signing, { ...proof(0), result: moved.results[0]!.result }, items[0]!))).toBe(
      'signature_invalid',
    );
  });
});
