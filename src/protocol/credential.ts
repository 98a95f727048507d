// Agent credentials (spec/PROTOCOL.md §Credentials): a JWT, EdDSA over the server's Ed25519 key,
// verifiable by anyone holding the server's JWKS (/.well-known/jwks.json).
//   header: {"alg":"EdDSA","kid":<server signing kid>,"typ":"latchkey-credential+jwt"}
//   claims: iss (server fingerprint), sub (agent id), role, cnf {sig_kid, kx_kid, sig, kx}, iat, exp,
//           jti, ver (protocol version)
// A credential is not a bearer secret: every message is also signed by the key named in cnf.
import { SignJWT, importJWK, jwtVerify, decodeProtectedHeader } from 'jose';
import { b64u, fromB64uExact } from './bytes.js';
import { ProtocolError } from './errors.js';
import { PROTOCOL_VERSION } from './version.js';

export const CREDENTIAL_TYP = 'latchkey-credential+jwt';
export type Role = 'agent' | 'relay';

export interface CredentialClaims {
  iss: string;
  sub: string;
  role: Role;
  cnf: { sig_kid: string; kx_kid: string; sig: string; kx: string };
  iat: number;
  exp: number;
  jti: string;
  ver: number;
}

export interface ServerSigningKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  kid: string;
}

export interface IssueInput {
  agentId: string;
  role: Role;
  signingKey: { publicKey: Uint8Array; kid: string };
  agreementKey: { publicKey: Uint8Array; kid: string };
  /** Seconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
  jti: string;
}

/** The JWKS entry for the server's signing key. */
export function serverJwk(key: { publicKey: Uint8Array; kid: string }) {
  return { kty: 'OKP', crv: 'Ed25519', x: b64u(key.publicKey), kid: key.kid, use: 'sig', alg: 'EdDSA' } as const;
}

/**
 * The server's imported signing key, per private key (the identity's bytes, kept for its lifetime):
 * importing it again for every credential cost more than the signature itself.
 */
const importedSigningKeys = new WeakMap<Uint8Array, ReturnType<typeof importJWK>>();

function signingKey(server: ServerSigningKey): ReturnType<typeof importJWK> {
  let key = importedSigningKeys.get(server.privateKey);
  if (!key) {
    key = importJWK({ kty: 'OKP', crv: 'Ed25519', x: b64u(server.publicKey), d: b64u(server.privateKey) }, 'EdDSA');
    importedSigningKeys.set(server.privateKey, key);
    key.catch(() => importedSigningKeys.delete(server.privateKey));
  }
  return key;
}

export async function issueCredential(server: ServerSigningKey, fingerprint: string, input: IssueInput): Promise<string> {
  const key = await signingKey(server);
  return new SignJWT({
    role: input.role,
    cnf: {
      sig_kid: input.signingKey.kid,
      kx_kid: input.agreementKey.kid,
      sig: b64u(input.signingKey.publicKey),
      kx: b64u(input.agreementKey.publicKey),
    },
    ver: PROTOCOL_VERSION,
  })
    .setProtectedHeader({ alg: 'EdDSA', kid: server.kid, typ: CREDENTIAL_TYP })
    .setIssuer(fingerprint)
    .setSubject(input.agentId)
    .setIssuedAt(input.issuedAt)
    .setExpirationTime(input.expiresAt)
    .setJti(input.jti)
    .sign(key);
}

/** The signing key id a credential names in its header ('' when it has none): which key set issued it. */
export function credentialKid(jwt: string): string {
  try {
    const kid = decodeProtectedHeader(jwt).kid;
    return typeof kid === 'string' ? kid : '';
  } catch {
    return '';
  }
}

/**
 * Verifies a credential against the server's signing key and fingerprint at time `nowMs`.
 * Any failure (signature, issuer, expiry, shape) is `credential_invalid`.
 */
export async function verifyCredential(
  jwt: string,
  server: { publicKey: Uint8Array; kid: string },
  fingerprint: string,
  nowMs: number,
): Promise<CredentialClaims> {
  try {
    if (decodeProtectedHeader(jwt).kid !== server.kid) throw new Error('kid');
    const key = await importJWK(serverJwk(server), 'EdDSA');
    const { payload } = await jwtVerify(jwt, key, {
      algorithms: ['EdDSA'],
      issuer: fingerprint,
      typ: CREDENTIAL_TYP,
      currentDate: new Date(nowMs),
      requiredClaims: ['sub', 'iat', 'exp', 'jti'],
    });
    const cnf = payload.cnf as Record<string, unknown> | undefined;
    if (
      (payload.role !== 'agent' && payload.role !== 'relay') ||
      payload.ver !== PROTOCOL_VERSION ||
      !cnf ||
      typeof cnf.sig_kid !== 'string' ||
      typeof cnf.kx_kid !== 'string' ||
      typeof cnf.sig !== 'string' ||
      typeof cnf.kx !== 'string'
    ) {
      throw new Error('shape');
    }
    fromB64uExact(cnf.sig, 32);
    fromB64uExact(cnf.kx, 32);
    return payload as unknown as CredentialClaims;
  } catch {
    throw new ProtocolError('credential_invalid');
  }
}
