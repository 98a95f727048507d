// Protocol fixtures: contexts with real or fixed randomness and clocks.
import { randomBytes } from 'node:crypto';
import type { CryptoBackend, ProtocolContext } from '../../src/protocol/crypto/types.js';
import { nobleCrypto } from '../../src/protocol/crypto/noble.js';

export function testContext(crypto: CryptoBackend = nobleCrypto, now = () => Date.now()): ProtocolContext {
  return { crypto, random: (n) => new Uint8Array(randomBytes(n)), now };
}
