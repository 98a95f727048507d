// Where `latchkey serve` gets its identity: --identity / LATCHKEY_IDENTITY (a secret), else
// --identity-file, else <data-dir>/identity.key, created (0600, exclusively) on first start.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import { decodeIdentitySecret, generateIdentitySecret, IdentityFormatError, type ServerIdentity } from '../server/identity.js';
import { dataDirLayout, type ServeConfig } from './config.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { StartupError } from './startup-error.js';

export async function loadOrCreateIdentity(crypto: CryptoBackend, config: ServeConfig): Promise<ServerIdentity> {
  if (config.identity) return decode(crypto, config.identity, 'LATCHKEY_IDENTITY');
  if (config.identityFile) {
    const text = await readFile(config.identityFile, 'utf8').catch(() => {
      throw new StartupError(`cannot read identity file ${config.identityFile}`);
    });
    return decode(crypto, text, config.identityFile);
  }
  const file = dataDirLayout(config.dataDir).identity;
  const existing = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new StartupError(`cannot read ${file}`);
  });
  if (existing !== undefined) return decode(crypto, existing, file);
  const secret = await generateIdentitySecret((n) => new Uint8Array(randomBytes(n)));
  try {
    await writeSecretFile(file, `${secret}\n`, { exclusive: true });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return decode(crypto, await readFile(file, 'utf8'), file);
    throw err;
  }
  return decode(crypto, secret, file);
}

async function decode(crypto: CryptoBackend, text: string, where: string): Promise<ServerIdentity> {
  try {
    return await decodeIdentitySecret(crypto, text);
  } catch (err) {
    if (err instanceof IdentityFormatError) throw new StartupError(`invalid server identity in ${where}: ${err.message}`);
    throw err;
  }
}
