import { join } from 'node:path';
import type { CryptoChoice } from './crypto.js';

// Resolved settings of `latchkey serve` (flags beat environment beats defaults; see README).
export interface ServeConfig {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string | undefined;
  /** A server identity given as a secret (string) instead of the data dir's identity.key. */
  identity: string | undefined;
  identityFile: string | undefined;
  /**
   * Key rotation (spec §14): previous identities, still accepted (secrets, then files), and the next
   * one, accepted before it is announced. When none is given and the identity comes from the data
   * dir, <data-dir>/identity.previous.key (one secret a line) and identity.next.key are read.
   */
  previousIdentities?: readonly string[] | undefined;
  previousIdentityFiles?: readonly string[] | undefined;
  nextIdentity?: string | undefined;
  nextIdentityFile?: string | undefined;
  logLevel: string;
  crypto: CryptoChoice | undefined;
  /** Inventory retention: drop older than this many days; keep at most this many per agent. */
  retentionDays: number;
  retentionPerAgent: number;
  /** When set, GET /metrics needs this bearer token (compared in constant time). */
  metricsToken?: string | undefined;
  /** When set, /metrics is served on this address only, not on the main port. */
  metricsListen?: { host: string; port: number } | undefined;
  /** Lifetime of agent keys and credentials, unless their token says otherwise (seconds). */
  credentialTtlSeconds?: number | undefined;
  /** How long a key superseded by a renewal is still accepted (seconds). */
  renewOverlapSeconds?: number | undefined;
  /** Reverse proxies (addresses or CIDRs) whose Forwarded / X-Forwarded-For name the client. */
  trustProxy?: readonly string[] | undefined;
  /** HTTPS: PEM certificate chain and private key files, read again on SIGHUP. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** `--key-request` (spec §20.2): a program and/or a Unix socket asked about unknown agents. */
  keyRequest?: { exec?: string | undefined; socket?: string | undefined; timeoutMs: number } | undefined;
  /** Behind a TLS-terminating proxy: believe its X-Forwarded-Proto (console cookies and Origin check). */
  trustForwardedProto?: boolean | undefined;
  /** GLPI forwarding (README "Forwarding to GLPI"); absent or no URLs: none, and old targets are deactivated. */
  forward?: ServeForward | undefined;
}

export interface ServeForward {
  /** Inventory endpoints; user info in a URL is its basic-auth credential (never stored or logged). */
  urls: readonly string[];
  /** Files (PEM): client certificate and key, extra CA certificates, for https targets. */
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
  compression: 'zlib' | 'gzip' | 'none';
  retryMaxSeconds: number;
}

/** Where each thing lives inside a data dir; every command that opens one goes through this. */
export function dataDirLayout(dataDir: string): {
  identity: string;
  previousIdentity: string;
  nextIdentity: string;
  adminToken: string;
  embeddedDatabase: string;
} {
  return {
    identity: join(dataDir, 'identity.key'),
    previousIdentity: join(dataDir, 'identity.previous.key'),
    nextIdentity: join(dataDir, 'identity.next.key'),
    adminToken: join(dataDir, 'admin.token'),
    embeddedDatabase: join(dataDir, 'pglite'),
  };
}
