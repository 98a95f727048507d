#!/usr/bin/env node
// The `latchkey` binary. Each command group lives in its own file and registers itself here.
import { Command } from 'commander';
import { registerServe } from './serve.js';
import { registerCommands } from './commands.js';
import { configureProgram, runCli } from './run.js';
import { VERSION } from './version.js';

const program = new Command()
  .name('latchkey')
  .description('Token-enrolled, end-to-end sealed messaging for inventory agents, relays and their server.')
  .version(VERSION)
  .enablePositionalOptions();
// Before any command is registered: subcommands copy these settings when they are created.
configureProgram(program, process.argv);

registerServe(program);
registerCommands(program);

await runCli(program, process.argv);
