// `latchkey identity generate`: a fresh server identity secret, for LATCHKEY_IDENTITY (Workers
// secrets, several instances behind one name). Printed once to stdout; keep it like a private key.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { generateIdentitySecret } from '../server/identity.js';
import { registerIdentityRotate } from './identity-rotate.js';

export function registerIdentity(program: Command): void {
  const identity = program.command('identity').description('Server identity secrets.');
  identity
    .command('generate')
    .description('Print a new server identity secret (Ed25519 + X25519 private keys).')
    .action(async () => {
      process.stdout.write(`${await generateIdentitySecret((n) => new Uint8Array(randomBytes(n)))}\n`);
    });
  registerIdentityRotate(identity);
}
