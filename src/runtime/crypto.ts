// Picks the primitive backend on Node (--crypto / LATCHKEY_CRYPTO):
//   native    node:crypto with cached KeyObjects (the fastest here; the default)
//   webcrypto WebCrypto Ed25519/X25519 + node:crypto ChaCha20-Poly1305 (what Workers run, minus the AEAD)
//   noble     the pure-JS reference
import { createNativeCrypto, nativeCryptoAvailable } from '../protocol/crypto/native.js';
import { nobleCrypto } from '../protocol/crypto/noble.js';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import { nodeChaCha20Poly1305 } from './node-aead.js';
import { createNodeCrypto } from './node-crypto.js';

export type CryptoChoice = 'native' | 'webcrypto' | 'noble';

export async function selectCrypto(prefer: CryptoChoice = 'native'): Promise<CryptoBackend> {
  if (prefer === 'noble') return nobleCrypto;
  if (prefer === 'webcrypto') {
    if (!(await nativeCryptoAvailable())) throw new Error('WebCrypto Ed25519/X25519 are not available in this runtime');
    return createNativeCrypto({ aead: nodeChaCha20Poly1305 });
  }
  return createNodeCrypto();
}
