import type { Command } from 'commander';

export function registerAgentEnroll(_program: Command): void {}
