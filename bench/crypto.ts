// Primitive rates per backend (ops/s, one core): what the interface in src/protocol/crypto buys.
import { randomBytes } from 'node:crypto';
import { createWebCrypto } from '../src/protocol/crypto/webcrypto.js';
import { nobleCrypto } from '../src/protocol/crypto/noble.js';
import type { CryptoBackend } from '../src/protocol/crypto/types.js';
import { openAuth, sealAuth } from '../src/protocol/hpke.js';
import { nodeChaCha20Poly1305 } from '../src/runtime/node-aead.js';
import { createNodeCrypto } from '../src/runtime/node-crypto.js';
import { opsPerSecond, SIZES, sizeName } from './measure.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

export async function benchCrypto(): Promise<Record<string, unknown>> {
  const backends: [string, CryptoBackend][] = [
    ['noble', nobleCrypto],
    ['webcrypto', createWebCrypto({ aead: nodeChaCha20Poly1305 })],
    ['node', createNodeCrypto()],
  ];
  const out: Record<string, unknown> = { unit: 'ops/s' };
  for (const [name, c] of backends) {
    const seed = rnd(32);
    const pub = await c.ed25519PublicKey(seed);
    const msg = rnd(256);
    const sig = await c.ed25519Sign(seed, msg);
    const skA = rnd(32);
    const skB = rnd(32);
    const pkB = await c.x25519PublicKey(skB);
    const pkA = await c.x25519PublicKey(skA);
    const key = rnd(32);
    const nonce = rnd(12);
    const r: Record<string, number> = {
      ed25519_sign_256B: await opsPerSecond(() => c.ed25519Sign(seed, msg)),
      ed25519_verify_256B: await opsPerSecond(() => c.ed25519Verify(pub, msg, sig)),
      x25519: await opsPerSecond(() => c.x25519(skA, pkB)),
    };
    for (const size of SIZES) {
      const pt = rnd(size);
      r[`aead_seal_${sizeName(size)}`] = await opsPerSecond(() => c.aeadSeal(key, nonce, new Uint8Array(0), pt));
    }
    const info = new TextEncoder().encode('bench');
    const pt = rnd(1024);
    const sealed = await sealAuth(c, pkB, info, new Uint8Array(0), pt, skA, rnd(32), pkA);
    r.hpke_auth_seal_1KiB = await opsPerSecond(() => sealAuth(c, pkB, info, new Uint8Array(0), pt, skA, rnd(32), pkA));
    r.hpke_auth_open_1KiB = await opsPerSecond(() => openAuth(c, sealed.enc, skB, info, new Uint8Array(0), sealed.ct, pkA, pkB));
    out[name] = r;
  }
  return out;
}
