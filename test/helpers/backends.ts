// Every primitive backend, by its name, for describe.each: the noble reference, webcrypto with
// node:crypto's ChaCha20-Poly1305 (--crypto webcrypto), webcrypto alone (what Workers run), node.
import { createWebCrypto } from '../../src/protocol/crypto/webcrypto.js';
import { nobleCrypto } from '../../src/protocol/crypto/noble.js';
import type { CryptoBackend } from '../../src/protocol/crypto/types.js';
import { nodeChaCha20Poly1305 } from '../../src/runtime/node-aead.js';
import { createNodeCrypto } from '../../src/runtime/node-crypto.js';

export const backends: [string, CryptoBackend][] = [
  ['noble', nobleCrypto],
  ['webcrypto+node-aead', createWebCrypto({ aead: nodeChaCha20Poly1305 })],
  ['webcrypto', createWebCrypto()],
  ['node', createNodeCrypto()],
];

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
