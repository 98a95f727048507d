// Envelope rates per backend and payload size, and the bytes the envelope adds.
import { randomBytes } from 'node:crypto';
import type { CryptoBackend, ProtocolContext } from '../src/protocol/crypto/types.js';
import { openEnvelope, parseEnvelope, sealEnvelope, serializeEnvelope, verifyEnvelopeSignature } from '../src/protocol/envelope.js';
import { generateKeySet } from '../src/protocol/keys.js';
import { opsPerSecond, SIZES, sizeName } from './measure.js';

export async function benchEnvelope(backends: { name: string; crypto: CryptoBackend }[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { unit: 'ops/s; overheadBytes = serialized envelope − plaintext (no credential attached)' };
  for (const { name, crypto } of backends) {
    const ctx: ProtocolContext = { crypto, random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
    const agent = await generateKeySet(ctx);
    const server = await generateKeySet(ctx);
    const r: Record<string, unknown> = {};
    let counter = 1;
    for (const size of SIZES) {
      const plaintext = new Uint8Array(randomBytes(size));
      const seal = () =>
        sealEnvelope(ctx, {
          sender: agent,
          recipient: server.agreement,
          type: 'inventory',
          contentType: 'application/json',
          contentEncoding: 'identity',
          counter: counter++,
          plaintext,
        });
      const { envelope } = await seal();
      const bytes = serializeEnvelope(envelope);
      const parsed = parseEnvelope(bytes);
      r[sizeName(size)] = {
        seal: await opsPerSecond(seal),
        open: await opsPerSecond(() => openEnvelope(ctx, parsed, server.agreement, agent.agreement.publicKey)),
        sign: await opsPerSecond(() => crypto.ed25519Sign(agent.signing.privateKey, bytes)),
        verify: await opsPerSecond(() => verifyEnvelopeSignature(ctx, parseEnvelope(bytes), agent.signing.publicKey)),
        overheadBytes: bytes.length - size,
      };
    }
    out[name] = r;
  }
  return out;
}
