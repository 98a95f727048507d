// `latchkey inventory show|list|export` and `latchkey forward status` (admin): stored inventories and
// their way out to GLPI, through the admin API.
import { Option, type Command } from 'commander';
import { adminCall, parseDuration, printRows, withAdminOptions, type AdminOptions } from './admin-options.js';
import { CliError } from './run.js';

interface Entry {
  agentId: string;
  agentName: string;
  messageId: string;
  receivedAt: string;
  size: number;
  inventory?: unknown;
  /** The relay path the message came through (spec §11), outer → inner; empty when direct. */
  path?: { name: string; hop: number; src?: string }[];
}
interface Page {
  inventories: Entry[];
  next_cursor: string | null;
}

/** `--since`: an ISO 8601 time, or a duration back from now (30m, 24h, 7d). */
function sinceOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (/^\d+[smhd]$/.test(text)) return new Date(Date.now() - parseDuration(text) * 1000).toISOString();
  const t = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(t))
    throw new CliError('usage', '--since takes an ISO 8601 time or a duration (30m, 24h, 7d)', 2);
  return new Date(t).toISOString();
}

/** Follows cursors page by page; yields each entry as it comes (one page in memory at a time). */
async function* pages(o: AdminOptions, path: string, query: Record<string, string | undefined>, limit: number): AsyncGenerator<Entry> {
  let cursor: string | null = null;
  let left = limit;
  do {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
    if (cursor) q.set('cursor', cursor);
    const page = (await adminCall(o, 'GET', `${path}?${q.toString()}`)) as Page;
    for (const e of page.inventories) {
      if (left-- <= 0) return;
      yield e;
    }
    cursor = page.next_cursor;
  } while (cursor);
}

function positive(flag: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new CliError('usage', `${flag} must be a positive integer`, 2);
    return n;
  };
}

export function registerInventoryCommands(program: Command): void {
  const inventory = program.command('inventory').description('Stored inventories (admin).');
  withAdminOptions(
    inventory
      .command('show')
      .description("Print an agent's latest inventory as stored, or the one with --message.")
      .argument('<agent>', 'agent id or name')
      .option('--message <mid>', 'the message id of the inventory (see `inventory list`)'),
  ).action(async (agent: string, o: AdminOptions & { message?: string }) => {
    const path =
      o.message === undefined
        ? `/v1/admin/agents/${encodeURIComponent(agent)}/inventory`
        : `/v1/admin/agents/${encodeURIComponent(agent)}/inventories/${encodeURIComponent(o.message)}`;
    const r = (await adminCall(o, 'GET', path)) as Entry;
    if (o.json) console.log(JSON.stringify(r, null, 2));
    else {
      console.error(`# received ${r.receivedAt}, message ${r.messageId}`);
      if (r.path?.length)
        console.error(`# via ${r.path.map((h) => `${h.name} (hop ${h.hop}${h.src ? `, from ${h.src}` : ''})`).join(' <- ')}`);
      console.log(JSON.stringify(r.inventory, null, 2));
    }
  });

  withAdminOptions(
    inventory
      .command('list')
      .description("List an agent's stored inventories, oldest first (message id, time, size).")
      .argument('<agent>', 'agent id or name')
      .option('--since <time>', 'only those received at or after this time (ISO 8601, or 30m, 24h, 7d ago)')
      .addOption(new Option('--limit <n>', 'at most this many').default(1000).argParser(positive('--limit'))),
  ).action(async (agent: string, o: AdminOptions & { since?: string; limit: number }) => {
    const rows: Entry[] = [];
    const query = { since: sinceOf(o.since), limit: String(Math.min(o.limit, 1000)) };
    for await (const e of pages(o, `/v1/admin/agents/${encodeURIComponent(agent)}/inventories`, query, o.limit)) rows.push(e);
    if (o.json) console.log(JSON.stringify({ inventories: rows }, null, 2));
    else printRows(rows as unknown as Record<string, unknown>[], ['receivedAt', 'messageId', 'size', 'agentName']);
  });

  withAdminOptions(
    inventory
      .command('export')
      .description('Stream every stored inventory (agent, time, message id, content) to stdout, oldest first.')
      .option('--since <time>', 'only those received at or after this time (ISO 8601, or 30m, 24h, 7d ago)')
      .addOption(new Option('--format <format>', 'output format: one JSON object per line').choices(['ndjson']).default('ndjson')),
  ).action(async (o: AdminOptions & { since?: string; format: string }) => {
    const query = { since: sinceOf(o.since), limit: '50' };
    for await (const e of pages(o, '/v1/admin/inventories', query, Number.POSITIVE_INFINITY)) {
      const line = `${JSON.stringify(e)}\n`;
      // Bounded memory: wait for stdout to take each line before asking for more.
      if (!process.stdout.write(line)) await new Promise((resolve) => process.stdout.once('drain', resolve));
    }
  });

  const forward = program.command('forward').description('Forwarding of stored inventories to GLPI (admin).');
  withAdminOptions(forward.command('status').description('Backlog, oldest undelivered age and last error per GLPI target.')).action(
    async (o: AdminOptions) => {
      const r = (await adminCall(o, 'GET', '/v1/admin/forward')) as { targets: Record<string, unknown>[] };
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else if (r.targets.length === 0) console.log('no forwarding targets (start `latchkey serve --forward-glpi URL`)');
      else
        printRows(
          r.targets.map((t) => ({
            ...t,
            oldest: t.oldestUndeliveredSeconds === null ? null : `${Math.round(Number(t.oldestUndeliveredSeconds))}s`,
          })),
          ['url', 'active', 'backlog', 'oldest', 'deliveredTotal', 'lastError', 'lastErrorAt'],
        );
    },
  );
}
