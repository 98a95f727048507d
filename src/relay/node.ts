// `latchkey relay serve` on Node: enroll on first start when given a token (role relay, the server
// pinned from the token exactly as `agent enroll` does, through upstream), bind the port, serve, and
// on SIGTERM/SIGINT stop accepting, let in-flight batches finish and write the status file.
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { enrollAgent } from '../agent/enroll.js';
import { loadState } from '../agent/state.js';
import { selectCrypto } from '../runtime/crypto.js';
import { createLogger } from '../runtime/node.js';
import { StartupError } from '../runtime/startup-error.js';
import { composeRelay, type RelayConfig } from './compose.js';

export interface RelayServeConfig extends RelayConfig {
  host: string;
  port: number;
  token?: string | undefined;
  name?: string | undefined;
  logLevel: string;
  /** `--legacy-listen` (spec §11.2): where legacy agents are heard; needs `legacyTrust` (possibly empty). */
  legacyListen?: { host: string; port: number } | undefined;
}

export interface RunningRelay {
  url: string;
  /** The legacy listener's URL, when `--legacy-listen` was given. */
  legacyUrl?: string;
  close(): Promise<void>;
}

export async function startRelay(config: RelayServeConfig): Promise<RunningRelay> {
  const logger = createLogger(config.logLevel);
  const ctx: ProtocolContext = { crypto: await selectCrypto(), random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
  const enrolled = await access(join(config.stateDir, 'agent.json')).then(
    () => true,
    () => false,
  );
  if (!enrolled) {
    if (!config.token) throw new StartupError(`${config.stateDir} holds no enrolled relay: give --token to enroll on first start`);
    const record = await enrollAgent(ctx, {
      serverUrl: config.upstream,
      token: config.token,
      stateDir: config.stateDir,
      name: config.name,
    });
    logger.info({ agentId: record.agentId, name: record.name }, 'relay enrolled');
  }
  const state = await loadState(ctx.crypto, config.stateDir);
  if (state.agent.role !== 'relay')
    throw new StartupError(
      `${config.stateDir} holds an identity with role ${state.agent.role}, not relay (create the token with --role relay)`,
    );

  const relay = await composeRelay(ctx, config, logger, (c) => getConnInfo(c).remote.address);
  const server = createAdaptorServer({ fetch: relay.app.fetch, hostname: config.host });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new StartupError(`cannot listen on ${config.host}:${config.port}: ${err.code ?? err.message}`)),
    );
    server.listen(config.port, config.host, () => resolve());
  });
  const urlOf = (a: AddressInfo) => `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  let legacy: ReturnType<typeof createAdaptorServer> | undefined;
  if (config.legacyListen && relay.legacyApp) {
    const { host, port } = config.legacyListen;
    legacy = createAdaptorServer({ fetch: relay.legacyApp.fetch, hostname: host });
    await new Promise<void>((resolve, reject) => {
      legacy!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new StartupError(`cannot listen on ${host}:${port} (--legacy-listen): ${err.code ?? err.message}`)),
      );
      legacy!.listen(port, host, () => resolve());
    });
  }
  await relay.start();
  const addr = server.address() as AddressInfo;
  const url = urlOf(addr);
  const legacyUrl = legacy ? urlOf(legacy.address() as AddressInfo) : undefined;
  if (legacyUrl) logger.info({ url: legacyUrl, trust: config.legacyTrust?.length ?? 0 }, 'latchkey relay legacy listener listening');
  logger.info(
    { url, upstream: config.upstream, relayKid: state.keys.signing.kid, spool: relay.spool.stats().depth },
    'latchkey relay listening',
  );
  return {
    url,
    ...(legacyUrl ? { legacyUrl } : {}),
    close: async () => {
      if (legacy)
        await new Promise<void>((resolve) => {
          legacy!.close(() => resolve());
          if ('closeIdleConnections' in legacy!) (legacy as { closeIdleConnections(): void }).closeIdleConnections();
        });
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeIdleConnections' in server) (server as { closeIdleConnections(): void }).closeIdleConnections();
      });
      await relay.stop();
    },
  };
}
