// The one rule for an agent's public keys, however they reach the server: enrollment (§6), renewal
// (§12), an import or a key request (§20). Both are 32 bytes; the Ed25519 key is a canonical encoding
// of a point that is not of small order (noble.ts acceptableEd25519PublicKey); the X25519 key is a
// canonical u-coordinate (u < p, top bit clear) that is not of low order, i.e. not one of the five
// canonical u whose X25519 result is all zero for every scalar (0, 1, p-1 and the two points of order
// 8: libsodium's blocklist, without its non-canonical forms, which the canonical rule already refuses).
import { acceptableEd25519PublicKey } from './crypto/noble.js';
import { keyIdOf } from './keys.js';

const P = 2n ** 255n - 19n;
const LOW_ORDER_U = new Set<bigint>([
  0n,
  1n,
  P - 1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
]);

/** A canonical X25519 public key (RFC 7748 u < p, bit 255 clear) that is not of low order. */
export function acceptableX25519PublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (publicKey[31]! & 0x80) return false;
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(publicKey[i]!);
  return u < P && !LOW_ORDER_U.has(u);
}

/** An agent's two public keys with their ids, once both passed the rule. */
export interface AgentPublicKeys {
  signingKey: { publicKey: Uint8Array; kid: string };
  agreementKey: { publicKey: Uint8Array; kid: string };
}

/** The two keys with their ids when both are acceptable; otherwise undefined (the caller says which code). */
export function acceptAgentPublicKeys(sig: Uint8Array, kx: Uint8Array): AgentPublicKeys | undefined {
  if (!acceptableEd25519PublicKey(sig) || !acceptableX25519PublicKey(kx)) return undefined;
  return { signingKey: { publicKey: sig, kid: keyIdOf('ed25519', sig) }, agreementKey: { publicKey: kx, kid: keyIdOf('x25519', kx) } };
}
