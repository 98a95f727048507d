// `latchkey inventory show AGENT_ID` (admin).
import type { Command } from 'commander';
import { adminCall, withAdminOptions, type AdminOptions } from './admin-options.js';

export function registerInventoryCommands(program: Command): void {
  const inventory = program.command('inventory').description('Stored inventories (admin).');
  withAdminOptions(inventory.command('show').description("Print an agent's latest inventory as stored.").argument('<id|name>', 'agent id or name')).action(
    async (agentId: string, o: AdminOptions) => {
      const r = (await adminCall(o, 'GET', `/v1/admin/agents/${encodeURIComponent(agentId)}/inventory`)) as {
        inventory: unknown;
        receivedAt: string;
        messageId: string;
        path?: { name: string; hop: number; src?: string }[];
      };
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else {
        console.error(`# received ${r.receivedAt}, message ${r.messageId}`);
        if (r.path?.length)
          console.error(`# via ${r.path.map((h) => `${h.name} (hop ${h.hop}${h.src ? `, from ${h.src}` : ''})`).join(' <- ')}`);
        console.log(JSON.stringify(r.inventory, null, 2));
      }
    },
  );
}
