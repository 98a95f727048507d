// ChaCha20-Poly1305 from node:crypto (OpenSSL), injected into the webcrypto backend on Node.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { AeadPrimitive } from '../protocol/crypto/types.js';

export const nodeChaCha20Poly1305: AeadPrimitive = {
  name: 'node',
  seal(key, nonce, aad, plaintext) {
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: plaintext.length });
    const head = c.update(plaintext);
    const tail = c.final();
    const tag = c.getAuthTag();
    const out = new Uint8Array(head.length + tail.length + 16);
    out.set(head, 0);
    out.set(tail, head.length);
    out.set(tag, head.length + tail.length);
    return out;
  },
  open(key, nonce, aad, sealed) {
    if (sealed.length < 16) return null;
    const body = sealed.subarray(0, sealed.length - 16);
    try {
      const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      d.setAAD(aad, { plaintextLength: body.length });
      d.setAuthTag(sealed.subarray(sealed.length - 16));
      const head = d.update(body);
      const tail = d.final();
      const out = new Uint8Array(head.length + tail.length);
      out.set(head, 0);
      out.set(tail, head.length);
      return out;
    } catch {
      return null;
    }
  },
};
