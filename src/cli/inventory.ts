import type { Command } from 'commander';

export function registerInventoryCommands(_program: Command): void {}
