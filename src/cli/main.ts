#!/usr/bin/env node
// The `latchkey` binary. Each command group lives in its own file and registers itself here.
import { Command } from 'commander';
import { registerServe } from './serve.js';
import { registerCommands } from './commands.js';
import { runCli } from './run.js';

const program = new Command()
  .name('latchkey')
  .description('Token-enrolled, end-to-end sealed messaging for inventory agents, relays and their server.')
  .version('0.1.0')
  .showHelpAfterError()
  .enablePositionalOptions();

registerServe(program);
registerCommands(program);

await runCli(program, process.argv);
