// `latchkey agent enroll`: keys are made here and never leave; the server is pinned from the token
// before its secret is sent; the response is verified before anything is kept.
import { b64u } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { verifyCredential } from '../protocol/credential.js';
import { pinServer } from '../protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse } from '../protocol/enrollment.js';
import { ProtocolError } from '../protocol/errors.js';
import { generateKeySet } from '../protocol/keys.js';
import { parseToken } from '../protocol/token.js';
import { endpoint, getJson, postJson } from './http.js';
import { checkStateDir, saveEnrollment, type AgentRecord } from './state.js';
import { hostname } from 'node:os';
import { AGENT_NAME } from '../server/services/name-rules.js';

export interface EnrollOptions {
  serverUrl: string;
  token: string;
  stateDir: string;
  name?: string | undefined;
  force?: boolean;
}

export async function enrollAgent(ctx: ProtocolContext, opts: EnrollOptions): Promise<AgentRecord> {
  const token = parseToken(opts.token); // token_malformed here, before any request
  await checkStateDir(opts.stateDir, opts.force ?? false); // nothing is created before the server said yes
  const server = pinServer(await getJson(endpoint(opts.serverUrl, '/.well-known/latchkey')), token.serverFingerprint);
  const keys = await generateKeySet(ctx);
  const { request, nonce } = await sealEnrollRequest(ctx, token, server, keys, opts.name ?? null);
  const body = await verifyEnrollResponse(ctx.crypto, server, await postJson(endpoint(opts.serverUrl, '/v1/enroll'), request), nonce);
  const claims = await verifyCredential(body.credential, server.signing, server.fingerprint, ctx.now());
  if (claims.sub !== body.agentId || claims.cnf.sig_kid !== keys.signing.kid || claims.cnf.kx_kid !== keys.agreement.kid) {
    throw new ProtocolError('credential_invalid', 'credential does not name this agent and its keys');
  }
  // What we keep is what we pinned (the token's fingerprint over the discovered keys, checked by
  // pinServer), never the server's own description of itself in the response.
  const agent: AgentRecord = {
    v: 1,
    agentId: body.agentId,
    name: body.name,
    role: body.role,
    labels: body.labels,
    serverUrl: opts.serverUrl,
    credential: body.credential,
    expiresAt: body.expiresAt,
    server: {
      sig: b64u(server.signing.publicKey),
      sigKid: server.signing.kid,
      kx: b64u(server.agreement.publicKey),
      kxKid: server.agreement.kid,
      fp: server.fingerprint,
    },
  };
  await saveEnrollment(opts.stateDir, keys, agent);
  return agent;
}

/**
 * The default agent name: this machine's host name, sanitised to the naming rule (letters, digits,
 * `-`, `_`, `.`; every other character becomes `-`; at most 128). Undefined when nothing is left:
 * the server then generates one.
 */
export function hostAgentName(host: string = hostname()): string | undefined {
  const name = host
    .trim()
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 128);
  return AGENT_NAME.test(name) && /[A-Za-z0-9]/.test(name) ? name : undefined;
}
