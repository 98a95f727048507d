// `latchkey agent …`: what runs on an agent machine.
import type { Command } from 'commander';
import { registerAgentEnroll } from './agent-enroll.js';
import { registerAgentMessaging } from './agent-messaging.js';
import { registerAgentRenew } from './agent-renew.js';
import { registerAgentRevocations } from './agent-revocations.js';
import { withProxyOption } from './proxy-option.js';

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('Agent-side commands: enroll, seal, send, run, renew, revocations.');
  registerAgentEnroll(agent);
  registerAgentMessaging(agent);
  registerAgentRenew(agent);
  registerAgentRevocations(agent);
  // Every agent command may talk to a server or relay (seal reads its pinned keys only; harmless there).
  for (const command of agent.commands) withProxyOption(command);
}
