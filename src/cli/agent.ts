// `latchkey agent …`: what runs on an agent machine.
import type { Command } from 'commander';
import { registerAgentEnroll } from './agent-enroll.js';
import { registerAgentMessaging } from './agent-messaging.js';
import { registerAgentRenew } from './agent-renew.js';
import { registerAgentRevocations } from './agent-revocations.js';

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('Agent-side commands: enroll, seal, send, run, renew, revocations.');
  registerAgentEnroll(agent);
  registerAgentMessaging(agent);
  registerAgentRenew(agent);
  registerAgentRevocations(agent);
}
