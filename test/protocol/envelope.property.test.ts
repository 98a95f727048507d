// The envelope under fire: round trips, and any single-bit change anywhere in the serialized
// envelope is rejected with the code its region calls for (spec §Envelope, verification order).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromUtf8, utf8 } from '../../src/protocol/bytes.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import {
  checkFreshness,
  openEnvelope,
  parseEnvelope,
  sealEnvelope,
  serializeEnvelope,
  verifyEnvelopeSignature,
} from '../../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../../src/protocol/keys.js';
import { backends } from '../helpers/backends.js';
import { testContext } from '../helpers/protocol.js';

/** The server's full check, in the spec's order; returns the plaintext or the error code. */
async function receive(
  ctx: ReturnType<typeof testContext>,
  bytes: Uint8Array,
  agent: KeySet,
  server: KeySet,
): Promise<Uint8Array | string> {
  try {
    const env = parseEnvelope(bytes);
    if (env.header.snd !== agent.signing.kid) return 'key_unknown';
    await verifyEnvelopeSignature(ctx, env, agent.signing.publicKey);
    checkFreshness(env.header, ctx.now(), 0);
    return await openEnvelope(ctx, env, server.agreement, agent.agreement.publicKey);
  } catch (e) {
    return e instanceof ProtocolError ? e.code : `untyped: ${String(e)}`;
  }
}

describe.each(backends)('envelope on %s', (_name, crypto) => {
  const ctx = testContext(crypto);

  it('seal then open round-trips any plaintext, with and without a credential', async () => {
    const agent = await generateKeySet(ctx);
    const server = await generateKeySet(ctx);
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 2048 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 2 ** 40 }),
        async (pt, withCred, counter) => {
          const { envelope, header } = await sealEnvelope(ctx, {
            sender: agent,
            recipient: server.agreement,
            type: 'inventory',
            contentType: 'application/json',
            contentEncoding: 'identity',
            counter,
            plaintext: pt,
            ...(withCred ? { credential: 'eyJhbGciOiJFZERTQSJ9.e30.c2ln' } : {}),
          });
          expect(header.ctr).toBe(counter);
          expect(await receive(ctx, serializeEnvelope(envelope), agent, server)).toEqual(pt);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('rejects every single-bit flip anywhere in the serialized envelope with its region code', async () => {
    const agent = await generateKeySet(ctx);
    const server = await generateKeySet(ctx);
    const { envelope } = await sealEnvelope(ctx, {
      sender: agent,
      recipient: server.agreement,
      type: 'inventory',
      contentType: 'application/json',
      contentEncoding: 'gzip',
      counter: 7,
      plaintext: utf8('{"deviceid":"x"}'),
      credential: 'eyJhbGciOiJFZERTQSJ9.e30.c2ln',
    });
    const bytes = serializeEnvelope(envelope);
    const text = fromUtf8(bytes);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: bytes.length * 8 - 1 }), async (bit) => {
        const flipped = bytes.slice();
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        const got = await receive(ctx, flipped, agent, server);
        expect(got).toBeTypeOf('string');
        // Structure or encoding broken → envelope_malformed (or version_unsupported for "v"); a
        // well-formed envelope whose bytes changed fails the signature (or names another key).
        expect(
          ['envelope_malformed', 'version_unsupported', 'signature_invalid', 'key_unknown'],
          `bit ${bit} near ${JSON.stringify(text.slice((bit >> 3) - 8, (bit >> 3) + 8))}`,
        ).toContain(got);
      }),
      { numRuns: 400 },
    );
  });

  it('refuses a wrong recipient, a wrong sender agreement key, and stale or future messages', async () => {
    const agent = await generateKeySet(ctx);
    const other = await generateKeySet(ctx);
    const server = await generateKeySet(ctx);
    const now = ctx.now();
    const { envelope } = await sealEnvelope(ctx, {
      sender: agent,
      recipient: server.agreement,
      type: 'inventory',
      contentType: 'application/json',
      contentEncoding: 'identity',
      counter: 1,
      plaintext: utf8('{}'),
    });
    const env = parseEnvelope(serializeEnvelope(envelope));
    const code = async (p: Promise<unknown> | (() => unknown)) => {
      try {
        await (typeof p === 'function' ? p() : p);
        return 'ok';
      } catch (e) {
        return (e as ProtocolError).code;
      }
    };
    expect(await code(openEnvelope(ctx, env, other.agreement, agent.agreement.publicKey))).toBe('recipient_mismatch');
    expect(await code(openEnvelope(ctx, env, server.agreement, other.agreement.publicKey))).toBe('decrypt_failed');
    expect(await code(verifyEnvelopeSignature(ctx, env, other.signing.publicKey))).toBe('signature_invalid');
    expect(await code(() => checkFreshness({ ...env.header, iat: now + 6 * 60_000 }, now, 0))).toBe('stale_message');
    expect(await code(() => checkFreshness({ ...env.header, iat: now - 8 * 24 * 3600_000 }, now, 0))).toBe('stale_message');
    expect(await code(() => checkFreshness({ ...env.header, ctr: 10 }, now, 10 + 4096))).toBe('stale_message');
    expect(await code(() => checkFreshness({ ...env.header, ctr: 11 }, now, 10 + 4096))).toBe('ok');
  });

  it('the parser throws nothing but ProtocolError on random input', async () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }),
          fc.json().map((j) => utf8(j)),
          fc.anything(),
        ),
        (input) => {
          try {
            parseEnvelope(input);
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
