// Byte helpers shared by the protocol core. No Buffer: Uint8Array and Web APIs only.
import { ProtocolError, type ProtocolErrorCode } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const utf8 = (s: string): Uint8Array => encoder.encode(s);

/** Strict UTF-8 decoding: invalid sequences throw `code`. */
export function fromUtf8(b: Uint8Array, code: ProtocolErrorCode = 'payload_invalid'): string {
  try {
    return decoder.decode(b);
  } catch {
    throw new ProtocolError(code, 'invalid UTF-8');
  }
}

/** A Map key for byte strings: one UTF-16 code unit per byte, exact and cheap to build. */
export function bytesKey(...parts: Uint8Array[]): string {
  let id = '';
  for (const p of parts) for (const b of p) id += String.fromCharCode(b);
  return id;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** u32 big-endian length prefix followed by the bytes (spec §Encodings: `lp(x)`). */
export function lengthPrefixed(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, b.length);
  out.set(b, 4);
  return out;
}

/** A domain-separation label: ASCII text followed by one zero byte. */
export const label = (text: string): Uint8Array => concatBytes(utf8(text), new Uint8Array([0]));

/** Constant-time equality for secrets and MACs: time depends only on the lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** base64url without padding (RFC 4648 §5). */
export function b64u(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[n >> 18]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/**
 * Strict base64url decoding: no padding, no characters outside the alphabet, no non-zero trailing
 * bits (so every byte string has exactly one accepted encoding). Failures throw `code`.
 */
export function fromB64u(text: string, code: ProtocolErrorCode = 'envelope_malformed'): Uint8Array {
  if (typeof text !== 'string' || text.length % 4 === 1) throw new ProtocolError(code, 'invalid base64url');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c]! : -1;
    if (v < 0) throw new ProtocolError(code, 'invalid base64url');
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new ProtocolError(code, 'invalid base64url');
  return out;
}

/** base64url of exactly `length` bytes, else `code`. */
export function fromB64uExact(text: string, length: number, code: ProtocolErrorCode = 'envelope_malformed'): Uint8Array {
  const b = fromB64u(text, code);
  if (b.length !== length) throw new ProtocolError(code, 'wrong length');
  return b;
}
