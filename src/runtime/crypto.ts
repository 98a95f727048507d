// Picks the primitive backend on Node: native (WebCrypto + node:crypto ChaCha20-Poly1305) when the
// runtime has it, else the noble reference. `prefer` comes from --crypto / LATCHKEY_CRYPTO.
import { createNativeCrypto, nativeCryptoAvailable } from '../protocol/crypto/native.js';
import { nobleCrypto } from '../protocol/crypto/noble.js';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import { nodeChaCha20Poly1305 } from './node-aead.js';

export async function selectCrypto(prefer?: 'native' | 'noble'): Promise<CryptoBackend> {
  if (prefer === 'noble') return nobleCrypto;
  if (await nativeCryptoAvailable()) return createNativeCrypto({ aead: nodeChaCha20Poly1305 });
  if (prefer === 'native') throw new Error('native crypto is not available in this runtime');
  return nobleCrypto;
}
