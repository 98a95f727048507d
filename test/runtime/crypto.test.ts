// One name per crypto backend, and the old `--crypto native` still selecting what it did (node:crypto).
import { describe, expect, it } from 'vitest';
import { CRYPTO_CHOICES, cryptoChoice, selectCrypto } from '../../src/runtime/crypto.js';

describe('crypto backend names', () => {
  it('selects each backend by its one name, which the backend reports', async () => {
    expect((await selectCrypto('node')).name).toBe('node');
    expect((await selectCrypto('noble')).name).toBe('noble');
    expect((await selectCrypto('webcrypto')).name).toBe('webcrypto+node-aead');
    expect((await selectCrypto()).name).toBe('node');
    expect([...CRYPTO_CHOICES]).toEqual(['node', 'webcrypto', 'noble']);
  });

  it('keeps native as an alias of node, and refuses unknown names', async () => {
    expect(cryptoChoice('native')).toBe('node');
    expect((await selectCrypto('native')).name).toBe('node');
    expect(cryptoChoice(undefined)).toBeUndefined();
    expect(() => cryptoChoice('openssl')).toThrow();
  });
});
