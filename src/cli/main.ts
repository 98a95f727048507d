#!/usr/bin/env node
// The `latchkey` binary. Each command group lives in its own file and registers itself here.
// Only the group named on the command line is loaded: `latchkey agent send` must not pay for the
// server's modules (a start went from ~0.9 s to ~0.25 s), and a fleet runs it on every cycle.
import { Command } from 'commander';
import { configureProgram, runCli } from './run.js';
import { VERSION } from './version.js';

type Register = (program: Command) => void;

/** Top-level command -> the module that registers it (one module may register several). */
const GROUPS: Record<string, () => Promise<Register>> = {
  serve: async () => (await import('./serve.js')).registerServe,
  migrate: async () => (await import('./serve.js')).registerServe,
  identity: async () => (await import('./identity.js')).registerIdentity,
  token: async () => (await import('./admin.js')).registerAdminCommands,
  agents: async () => (await import('./admin.js')).registerAdminCommands,
  keys: async () => (await import('./admin.js')).registerAdminCommands,
  audit: async () => (await import('./admin.js')).registerAdminCommands,
  admin: async () => (await import('./admin.js')).registerAdminCommands,
  agent: async () => (await import('./agent.js')).registerAgentCommands,
  inventory: async () => (await import('./inventory.js')).registerInventoryCommands,
  relay: async () => (await import('./relay.js')).registerRelayCommands,
  forward: async () => (await import('./inventory.js')).registerInventoryCommands,
};

const program = new Command()
  .name('latchkey')
  .description('Token-enrolled, end-to-end sealed messaging for inventory agents, relays and their server.')
  .version(VERSION)
  .enablePositionalOptions();
// Before any command is registered: subcommands copy these settings when they are created.
configureProgram(program, process.argv);

// The first word that is not an option names the group; with none (or an unknown one) every group
// is registered, so `latchkey --help` and commander's "unknown command" suggestions stay complete.
const args = process.argv.slice(2);
const named = args.find((arg) => !arg.startsWith('-'));
const versionOnly = named === undefined && (args.includes('--version') || args.includes('-V'));
const loaders = versionOnly ? [] : named !== undefined && GROUPS[named] ? [GROUPS[named]] : Object.values(GROUPS);
const registered = new Set<Register>();
for (const load of loaders) {
  const register = await load();
  if (registered.has(register)) continue;
  registered.add(register);
  register(program);
}

await runCli(program, process.argv);
