// Picks the primitive backend on Node (--crypto / LATCHKEY_CRYPTO). One name per backend:
//   node       node:crypto with cached KeyObjects (src/runtime/node-crypto.ts; the fastest here; the default)
//   webcrypto  WebCrypto Ed25519/X25519 (src/protocol/crypto/webcrypto.ts, what Workers run) with
//              node:crypto's ChaCha20-Poly1305 injected; reports itself as `webcrypto+node-aead`
//   noble      the pure-JS reference (src/protocol/crypto/noble.ts)
// `native` is the old name of `node`, still accepted: flags are public contract.
import { createWebCrypto, webCryptoAvailable } from '../protocol/crypto/webcrypto.js';
import { nobleCrypto } from '../protocol/crypto/noble.js';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import { nodeChaCha20Poly1305 } from './node-aead.js';
import { createNodeCrypto } from './node-crypto.js';

export const CRYPTO_CHOICES = ['node', 'webcrypto', 'noble'] as const;
export type CryptoChoice = (typeof CRYPTO_CHOICES)[number];
/** Old names that still select a backend. */
export const CRYPTO_ALIASES = { native: 'node' } as const satisfies Record<string, CryptoChoice>;

/** A backend's name or alias as its one name; undefined stays undefined (the default). */
export function cryptoChoice(name: string | undefined): CryptoChoice | undefined {
  if (name === undefined) return undefined;
  if (Object.hasOwn(CRYPTO_ALIASES, name)) return CRYPTO_ALIASES[name as keyof typeof CRYPTO_ALIASES];
  if ((CRYPTO_CHOICES as readonly string[]).includes(name)) return name as CryptoChoice;
  throw new Error(`unknown crypto backend ${JSON.stringify(name)}: use ${CRYPTO_CHOICES.join(', ')}`);
}

export async function selectCrypto(prefer: CryptoChoice | keyof typeof CRYPTO_ALIASES = 'node'): Promise<CryptoBackend> {
  const choice = cryptoChoice(prefer);
  if (choice === 'noble') return nobleCrypto;
  if (choice === 'webcrypto') {
    if (!(await webCryptoAvailable())) throw new Error('WebCrypto Ed25519/X25519 are not available in this runtime');
    return createWebCrypto({ aead: nodeChaCha20Poly1305 });
  }
  return createNodeCrypto();
}
