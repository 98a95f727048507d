// Where `latchkey serve` gets its identity: --identity / LATCHKEY_IDENTITY (a secret), else
// --identity-file, else <data-dir>/identity.key, created (0600, exclusively) on first start.
// During a key rotation (spec §14) also the previous and next identities (loadKeyRing).
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import { decodeIdentitySecret, generateIdentitySecret, IdentityFormatError, type ServerIdentity } from '../server/identity.js';
import { dataDirLayout, type ServeConfig } from './config.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { StartupError } from './startup-error.js';
import { createKeyRing, type KeyRing } from '../server/key-ring.js';

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

/**
 * The whole key ring: the current identity (above), the previous ones (--previous-identity secrets
 * and --previous-identity-file files) and the next one; from the data dir's identity.previous.key
 * (one secret a line) and identity.next.key when the identity is the data dir's and none is given.
 */
export async function loadKeyRing(crypto: CryptoBackend, config: ServeConfig): Promise<KeyRing> {
  const current = await loadOrCreateIdentity(crypto, config);
  const previous: ServerIdentity[] = [];
  for (const secret of config.previousIdentities ?? []) previous.push(await decode(crypto, secret, 'LATCHKEY_PREVIOUS_IDENTITY'));
  for (const file of config.previousIdentityFiles ?? []) previous.push(...(await decodeFile(crypto, file, true)));
  let next = config.nextIdentity ? await decode(crypto, config.nextIdentity, 'LATCHKEY_NEXT_IDENTITY') : undefined;
  if (config.nextIdentityFile) next = (await decodeFile(crypto, config.nextIdentityFile, true))[0];
  const fromDataDir = !config.identity && !config.identityFile;
  if (fromDataDir && !config.previousIdentities?.length && !config.previousIdentityFiles?.length) {
    previous.push(...(await decodeFile(crypto, dataDirLayout(config.dataDir).previousIdentity, false)));
  }
  if (fromDataDir && !config.nextIdentity && !config.nextIdentityFile)
    next = (await decodeFile(crypto, dataDirLayout(config.dataDir).nextIdentity, false))[0];
  return createKeyRing(current, previous, next);
}

/** Every identity secret in `file`, one a line; none when the file is absent and not `required`. */
async function decodeFile(crypto: CryptoBackend, file: string, required: boolean): Promise<ServerIdentity[]> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && !required) return '';
    throw new StartupError(`cannot read identity file ${file}`);
  });
  const out: ServerIdentity[] = [];
  for (const line of text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean))
    out.push(await decode(crypto, line, file));
  if (required && !out.length) throw new StartupError(`identity file ${file} holds no identity`);
  return out;
}
