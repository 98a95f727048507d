// Both primitive backends, for describe.each: the noble reference and the native one (WebCrypto +
// node:crypto ChaCha20-Poly1305), plus native without the injected AEAD (what Workers run).
import { createNativeCrypto } from '../../src/protocol/crypto/native.js';
import { nobleCrypto } from '../../src/protocol/crypto/noble.js';
import type { CryptoBackend } from '../../src/protocol/crypto/types.js';
import { nodeChaCha20Poly1305 } from '../../src/runtime/node-aead.js';
import { createNodeCrypto } from '../../src/runtime/node-crypto.js';

export const backends: [string, CryptoBackend][] = [
  ['noble', nobleCrypto],
  ['native', createNativeCrypto({ aead: nodeChaCha20Poly1305 })],
  ['native-webcrypto', createNativeCrypto()],
  ['node', createNodeCrypto()],
];

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
