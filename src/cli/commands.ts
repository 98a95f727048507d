// Command groups other than `serve`, one file each.
import type { Command } from 'commander';
import { registerAdminCommands } from './admin.js';
import { registerAgentCommands } from './agent.js';
import { registerIdentity } from './identity.js';
import { registerInventoryCommands } from './inventory.js';

export function registerCommands(program: Command): void {
  registerIdentity(program);
  registerAdminCommands(program);
  registerAgentCommands(program);
  registerInventoryCommands(program);
}
