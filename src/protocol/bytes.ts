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
  // fromCharCode over a whole (bounded) chunk: one native call, not one concatenation per byte;
  // keys are short, so no view is made unless a part is long.
  for (const p of parts) {
    if (p.length <= 4096) id += String.fromCharCode.apply(null, p as unknown as number[]);
    else for (let i = 0; i < p.length; i += 4096) id += String.fromCharCode.apply(null, p.subarray(i, i + 4096) as unknown as number[]);
  }
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
const ENCODE = utf8(ALPHABET);
const ascii = new TextDecoder('utf-8');

/** base64url without padding (RFC 4648 §5). */
export function b64u(bytes: Uint8Array): string {
  // ASCII codes into one buffer, decoded once: no string concatenation per character.
  const out = new Uint8Array(Math.ceil((bytes.length * 4) / 3));
  let i = 0;
  let o = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = ENCODE[n >> 18]!;
    out[o++] = ENCODE[(n >> 12) & 63]!;
    out[o++] = ENCODE[(n >> 6) & 63]!;
    out[o++] = ENCODE[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out[o++] = ENCODE[n >> 18]!;
    out[o++] = ENCODE[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out[o++] = ENCODE[n >> 18]!;
    out[o++] = ENCODE[(n >> 12) & 63]!;
    out[o++] = ENCODE[(n >> 6) & 63]!;
  }
  return ascii.decode(out);
}

/**
 * Strict base64url decoding: no padding, no characters outside the alphabet, no non-zero trailing
 * bits (so every byte string has exactly one accepted encoding). Failures throw `code`. Four
 * characters at a time: the envelope's ciphertext is decoded on every message.
 */
export function fromB64u(text: string, code: ProtocolErrorCode = 'envelope_malformed'): Uint8Array {
  if (typeof text !== 'string') throw new ProtocolError(code, 'invalid base64url');
  const length = text.length;
  const rest = length & 3;
  if (rest === 1) throw new ProtocolError(code, 'invalid base64url');
  const out = new Uint8Array((length * 3) >> 2);
  const whole = length - rest;
  let o = 0;
  for (let i = 0; i < whole; i += 4) {
    const c0 = text.charCodeAt(i);
    const c1 = text.charCodeAt(i + 1);
    const c2 = text.charCodeAt(i + 2);
    const c3 = text.charCodeAt(i + 3);
    if ((c0 | c1 | c2 | c3) > 127) throw new ProtocolError(code, 'invalid base64url');
    const a = LOOKUP[c0]!;
    const b = LOOKUP[c1]!;
    const c = LOOKUP[c2]!;
    const d = LOOKUP[c3]!;
    if ((a | b | c | d) < 0) throw new ProtocolError(code, 'invalid base64url');
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  if (rest !== 0) {
    const c0 = text.charCodeAt(whole);
    const c1 = text.charCodeAt(whole + 1);
    const c2 = rest === 3 ? text.charCodeAt(whole + 2) : 0x41; // 'A': zero bits
    if ((c0 | c1 | c2) > 127) throw new ProtocolError(code, 'invalid base64url');
    const a = LOOKUP[c0]!;
    const b = LOOKUP[c1]!;
    const c = LOOKUP[c2]!;
    if ((a | b | c) < 0) throw new ProtocolError(code, 'invalid base64url');
    const n = (a << 18) | (b << 12) | (c << 6);
    // The bits below the last whole byte must be zero: one accepted encoding per byte string.
    if (rest === 2 ? (n & 0xffff) !== 0 : (n & 0xff) !== 0) throw new ProtocolError(code, 'invalid base64url');
    out[o++] = n >> 16;
    if (rest === 3) out[o++] = (n >> 8) & 0xff;
  }
  return out;
}

/** base64url of exactly `length` bytes, else `code`. */
export function fromB64uExact(text: string, length: number, code: ProtocolErrorCode = 'envelope_malformed'): Uint8Array {
  const b = fromB64u(text, code);
  if (b.length !== length) throw new ProtocolError(code, 'wrong length');
  return b;
}
