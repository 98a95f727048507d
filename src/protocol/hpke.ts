// RFC 9180 HPKE for exactly one suite (spec/PROTOCOL.md §Sealing):
//   KEM  0x0020 DHKEM(X25519, HKDF-SHA256)   KDF 0x0001 HKDF-SHA256   AEAD 0x0003 ChaCha20-Poly1305
// Modes Base (0x00) and Auth (0x02). DH, AEAD and HMAC-SHA256 (under HKDF) go through the
// CryptoBackend. Checked against the official RFC 9180 vectors (test/protocol/hpke.test.ts).
import { bytesKey, concatBytes, utf8 } from './bytes.js';
import type { CryptoBackend } from './crypto/types.js';
import { CryptoError, ProtocolError } from './errors.js';
import { Lru, memoizeAsync } from './lru.js';

export const MODE_BASE = 0x00;
export const MODE_AUTH = 0x02;
const KEM_ID = 0x0020;
const KDF_ID = 0x0001;
const AEAD_ID = 0x0003;
const NK = 32;
const NN = 12;
const NSECRET = 32;

const i2osp = (n: number, w: number): Uint8Array => {
  const out = new Uint8Array(w);
  for (let i = w - 1, x = n; i >= 0; i--, x = Math.floor(x / 256)) out[i] = x & 0xff;
  return out;
};

const HPKE_V1 = utf8('HPKE-v1');
const KEM_SUITE = concatBytes(utf8('KEM'), i2osp(KEM_ID, 2));
const HPKE_SUITE = concatBytes(utf8('HPKE'), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(AEAD_ID, 2));
const EMPTY = new Uint8Array(0);
const ZERO_SALT = new Uint8Array(32);

/** RFC 5869 HKDF-Extract with HMAC-SHA256 (an empty salt means 32 zero bytes, §2.2). */
export function hkdfExtract(c: CryptoBackend, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return c.hmacSha256(salt.length ? salt : ZERO_SALT, ikm);
}

/** RFC 5869 HKDF-Expand with HMAC-SHA256; length ≤ 255 × 32. */
export function hkdfExpand(c: CryptoBackend, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (length > 255 * 32) throw new CryptoError('HKDF output too long');
  const out = new Uint8Array(length);
  let t: Uint8Array = EMPTY;
  for (let i = 1, at = 0; at < length; i++, at += 32) {
    t = c.hmacSha256(prk, concatBytes(t, info, new Uint8Array([i])));
    out.set(t.subarray(0, Math.min(32, length - at)), at);
  }
  return out;
}

function labeledExtract(c: CryptoBackend, suite: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return hkdfExtract(c, salt, concatBytes(HPKE_V1, suite, utf8(label), ikm));
}

function labeledExpand(c: CryptoBackend, suite: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array {
  return hkdfExpand(c, prk, concatBytes(i2osp(length, 2), HPKE_V1, suite, utf8(label), info), length);
}

/** RFC 9180 §7.1.3 DeriveKeyPair for X25519 (used by the vector tests). */
export async function deriveKeyPair(c: CryptoBackend, ikm: Uint8Array): Promise<{ privateKey: Uint8Array; publicKey: Uint8Array }> {
  const prk = labeledExtract(c, KEM_SUITE, EMPTY, 'dkp_prk', ikm);
  const privateKey = labeledExpand(c, KEM_SUITE, prk, 'sk', EMPTY, 32);
  return { privateKey, publicKey: await c.x25519PublicKey(privateKey) };
}

function extractAndExpand(c: CryptoBackend, dh: Uint8Array, kemContext: Uint8Array): Uint8Array {
  const prk = labeledExtract(c, KEM_SUITE, EMPTY, 'eae_prk', dh);
  return labeledExpand(c, KEM_SUITE, prk, 'shared_secret', kemContext, NSECRET);
}

/**
 * The static-static DH of Auth mode is constant per (our key, peer key): cache it so a server
 * opening many messages from one agent pays one X25519 per message, not two. Bounded LRU, keyed by
 * both keys' bytes; entries are secrets and live only in memory.
 */
const STATIC_CACHE_SIZE = 65_536;
const staticCache = new Lru<string, Promise<Uint8Array>>(STATIC_CACHE_SIZE);

function cachedStaticDh(c: CryptoBackend, sk: Uint8Array, pk: Uint8Array): Promise<Uint8Array> {
  return memoizeAsync(staticCache, c.name + bytesKey(sk, pk), () => c.x25519(sk, pk));
}

/** An HPKE context: the sequence number lives inside; callers never choose nonces. */
export class HpkeContext {
  private seq = 0;
  private exporterSecret: Uint8Array | undefined;
  constructor(
    private readonly c: CryptoBackend,
    private readonly key: Uint8Array,
    private readonly baseNonce: Uint8Array,
    /** secret and key_schedule_context, kept to derive the exporter secret only when asked for. */
    private readonly schedule: { secret: Uint8Array; context: Uint8Array },
  ) {}

  private nextNonce(): Uint8Array {
    // 2^53 messages in one context is far beyond any use here; refuse rather than wrap.
    if (this.seq >= Number.MAX_SAFE_INTEGER) throw new CryptoError('HPKE sequence number overflow');
    const nonce = i2osp(this.seq, NN);
    for (let i = 0; i < NN; i++) nonce[i]! ^= this.baseNonce[i]!;
    this.seq++;
    return nonce;
  }

  seal(aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
    return this.c.aeadSeal(this.key, this.nextNonce(), aad, plaintext);
  }

  async open(aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
    const nonce = i2osp(this.seq, NN);
    for (let i = 0; i < NN; i++) nonce[i]! ^= this.baseNonce[i]!;
    const pt = await this.c.aeadOpen(this.key, nonce, aad, ciphertext);
    if (pt === null) throw new ProtocolError('decrypt_failed');
    this.seq++;
    return pt;
  }

  export(exporterContext: Uint8Array, length: number): Uint8Array {
    this.exporterSecret ??= labeledExpand(this.c, HPKE_SUITE, this.schedule.secret, 'exp', this.schedule.context, 32);
    return labeledExpand(this.c, HPKE_SUITE, this.exporterSecret, 'sec', exporterContext, length);
  }
}

/**
 * psk_id_hash is a constant and info_hash depends only on `info` (a handful of protocol constants):
 * both are computed once per info, not per message. Keyed by the info bytes; bounded.
 */
const infoHashes = new Lru<string, { pskIdHash: Uint8Array; infoHash: Uint8Array }>(64);

function keySchedule(c: CryptoBackend, mode: number, sharedSecret: Uint8Array, info: Uint8Array): HpkeContext {
  const id = bytesKey(info);
  let fixed = infoHashes.get(id);
  if (!fixed) {
    fixed = {
      pskIdHash: labeledExtract(c, HPKE_SUITE, EMPTY, 'psk_id_hash', EMPTY),
      infoHash: labeledExtract(c, HPKE_SUITE, EMPTY, 'info_hash', info),
    };
    infoHashes.set(id, fixed);
  }
  const context = concatBytes(new Uint8Array([mode]), fixed.pskIdHash, fixed.infoHash);
  const secret = labeledExtract(c, HPKE_SUITE, sharedSecret, 'secret', EMPTY);
  return new HpkeContext(
    c,
    labeledExpand(c, HPKE_SUITE, secret, 'key', context, NK),
    labeledExpand(c, HPKE_SUITE, secret, 'base_nonce', context, NN),
    { secret, context },
  );
}

/** Receiver-side DH failures (low-order peer keys) look exactly like any other decryption failure. */
async function receiverDh<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CryptoError) throw new ProtocolError('decrypt_failed');
    throw err;
  }
}

export async function setupBaseS(
  c: CryptoBackend,
  pkR: Uint8Array,
  info: Uint8Array,
  skE: Uint8Array,
): Promise<{ enc: Uint8Array; ctx: HpkeContext }> {
  const enc = await c.x25519PublicKey(skE);
  const dh = await c.x25519(skE, pkR);
  return { enc, ctx: keySchedule(c, MODE_BASE, extractAndExpand(c, dh, concatBytes(enc, pkR)), info) };
}

/** pkR: the recipient's public key when the caller holds it (skip deriving it from skR again). */
export async function setupBaseR(
  c: CryptoBackend,
  enc: Uint8Array,
  skR: Uint8Array,
  info: Uint8Array,
  knownPkR?: Uint8Array,
): Promise<HpkeContext> {
  return receiverDh(async () => {
    const pkR = knownPkR ?? (await c.x25519PublicKey(skR));
    const dh = await c.x25519(skR, enc);
    return keySchedule(c, MODE_BASE, extractAndExpand(c, dh, concatBytes(enc, pkR)), info);
  });
}

export async function setupAuthS(
  c: CryptoBackend,
  pkR: Uint8Array,
  info: Uint8Array,
  skS: Uint8Array,
  skE: Uint8Array,
  pkS?: Uint8Array,
): Promise<{ enc: Uint8Array; ctx: HpkeContext }> {
  const enc = await c.x25519PublicKey(skE);
  const senderPub = pkS ?? (await c.x25519PublicKey(skS));
  const dh = concatBytes(await c.x25519(skE, pkR), await cachedStaticDh(c, skS, pkR));
  return { enc, ctx: keySchedule(c, MODE_AUTH, extractAndExpand(c, dh, concatBytes(enc, pkR, senderPub)), info) };
}

export async function setupAuthR(
  c: CryptoBackend,
  enc: Uint8Array,
  skR: Uint8Array,
  info: Uint8Array,
  pkS: Uint8Array,
  pkR?: Uint8Array,
): Promise<HpkeContext> {
  return receiverDh(async () => {
    const recipientPub = pkR ?? (await c.x25519PublicKey(skR));
    const dh = concatBytes(await c.x25519(skR, enc), await cachedStaticDh(c, skR, pkS));
    return keySchedule(c, MODE_AUTH, extractAndExpand(c, dh, concatBytes(enc, recipientPub, pkS)), info);
  });
}

/** Single-shot Base mode: one message per context (RFC 9180 §6.1). */
export async function sealBase(c: CryptoBackend, pkR: Uint8Array, info: Uint8Array, aad: Uint8Array, pt: Uint8Array, skE: Uint8Array) {
  const { enc, ctx } = await setupBaseS(c, pkR, info, skE);
  return { enc, ct: await ctx.seal(aad, pt) };
}

export async function openBase(
  c: CryptoBackend,
  enc: Uint8Array,
  skR: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
  pkR?: Uint8Array,
) {
  return (await setupBaseR(c, enc, skR, info, pkR)).open(aad, ct);
}

/** Single-shot Auth mode: the AEAD also authenticates the sender's static X25519 key. */
export async function sealAuth(
  c: CryptoBackend,
  pkR: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  pt: Uint8Array,
  skS: Uint8Array,
  skE: Uint8Array,
  pkS?: Uint8Array,
) {
  const { enc, ctx } = await setupAuthS(c, pkR, info, skS, skE, pkS);
  return { enc, ct: await ctx.seal(aad, pt) };
}

export async function openAuth(
  c: CryptoBackend,
  enc: Uint8Array,
  skR: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
  pkS: Uint8Array,
  pkR?: Uint8Array,
) {
  return (await setupAuthR(c, enc, skR, info, pkS, pkR)).open(aad, ct);
}
