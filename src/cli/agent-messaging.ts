import type { Command } from 'commander';

export function registerAgentMessaging(_program: Command): void {}
