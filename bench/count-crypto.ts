// Preloaded into the bench's server and relay processes (`--import ./bench/count-crypto.ts`):
// counts Ed25519 signatures and verifications wherever they are made — node:crypto's sign/verify
// (the `node` backend) and WebCrypto's (jose, which verifies credentials) — so the bench can report
// signatures per envelope for each process without touching the product's code.
import type * as NodeCrypto from 'node:crypto';
import { createRequire, syncBuiltinESMExports } from 'node:module';

export interface CryptoCounts {
  sign: number;
  verify: number;
}

const counts: CryptoCounts = { sign: 0, verify: 0 };
(globalThis as { __latchkeyBenchCrypto?: CryptoCounts }).__latchkeyBenchCrypto = counts;

const nodeCrypto = createRequire(import.meta.url)('node:crypto') as typeof NodeCrypto;
const { sign, verify } = nodeCrypto;
nodeCrypto.sign = ((...args: Parameters<typeof sign>) => {
  counts.sign++;
  return (sign as (...a: unknown[]) => unknown)(...args);
}) as typeof sign;
nodeCrypto.verify = ((...args: Parameters<typeof verify>) => {
  counts.verify++;
  return (verify as (...a: unknown[]) => unknown)(...args);
}) as typeof verify;
// ESM imports of node:crypto (`import { sign } from 'node:crypto'`) see the wrapped functions too.
syncBuiltinESMExports();

type Subtle = typeof globalThis.crypto.subtle;
const subtle = Object.getPrototypeOf(globalThis.crypto.subtle) as Subtle;
const subtleSign = subtle.sign;
const subtleVerify = subtle.verify;
subtle.sign = function (this: Subtle, ...args: Parameters<Subtle['sign']>) {
  counts.sign++;
  return subtleSign.apply(this, args);
};
subtle.verify = function (this: Subtle, ...args: Parameters<Subtle['verify']>) {
  counts.verify++;
  return subtleVerify.apply(this, args);
};

/** The counts so far in this process. */
export function cryptoCounts(): CryptoCounts {
  return { ...counts };
}
