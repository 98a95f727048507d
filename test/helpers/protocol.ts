// Protocol fixtures: contexts with real or fixed randomness and clocks.
import { randomBytes } from 'node:crypto';
import type { CryptoBackend, ProtocolContext } from '../../src/protocol/crypto/types.js';
import { nobleCrypto } from '../../src/protocol/crypto/noble.js';
import { ProtocolError } from '../../src/protocol/errors.js';

export function testContext(crypto: CryptoBackend = nobleCrypto, now = () => Date.now()): ProtocolContext {
  return { crypto, random: (n) => new Uint8Array(randomBytes(n)), now };
}

/** What a call (or promise) ends in: 'ok', its protocol error code, or 'untyped …' for anything else. */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
    return 'ok';
  } catch (e) {
    return e instanceof ProtocolError ? e.code : `untyped ${String(e)}`;
  }
}
