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
  /** Behind a TLS-terminating proxy: believe its X-Forwarded-Proto (console cookies and Origin check). */
  trustForwardedProto?: boolean | undefined;
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
