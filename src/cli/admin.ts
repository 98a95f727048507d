// Admin commands: tokens, agents, agent keys, audit, admin keys. All go through the admin API.
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { registerAdminBootstrap } from './admin-bootstrap.js';
import { MAX_CREDENTIAL_TTL_SECONDS, MIN_CREDENTIAL_TTL_SECONDS } from '../server/lifetimes.js';
import { adminCall, isLoopback, parseDurationIn, printRows, showDuration, withAdminOptions, type AdminOptions } from './admin-options.js';
import { DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, MAX_TOKEN_USES, MIN_TOKEN_TTL_SECONDS } from '../server/token-limits.js';
import { CliError } from './run.js';

const out = (v: unknown) => console.log(JSON.stringify(v, null, 2));

interface ChainStatus {
  ok: boolean;
  entries: number;
  brokenAt?: number;
  problem?: 'broken' | 'truncated' | 'rewritten';
  headHash?: string;
  head?: unknown;
}

/** A signed head given inline (JSON) or as a file holding it. */
async function readHead(value: string): Promise<unknown> {
  const text = value.trim().startsWith('{')
    ? value
    : await readFile(value, 'utf8').catch(() => {
        throw new CliError('usage', `--expect-head: not JSON and no such file: ${value}`, 2);
      });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError('usage', '--expect-head is not valid JSON', 2);
  }
}

function parseUses(text: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_TOKEN_USES)
    throw new CliError('usage', `--uses must be between 1 and ${MAX_TOKEN_USES}, got ${JSON.stringify(text)}`, 2);
  return n;
}

function collectLabel(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new CliError('usage', `--label takes k=v, got ${JSON.stringify(value)}`, 2);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** An import file's text, from a path or standard input (`-`). */
async function readImport(file: string): Promise<string> {
  if (file !== '-')
    return readFile(file, 'utf8').catch(() => {
      throw new CliError('usage', `cannot read ${file}`, 2);
    });
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Every row of a paginated admin listing: follows `next_cursor` until the last page. */
async function listAll(o: AdminOptions, path: string, key: string, query = ''): Promise<Record<string, unknown>[]> {
  const all: Record<string, unknown>[] = [];
  let cursor: string | null = null;
  do {
    const page = (await adminCall(
      o,
      'GET',
      `${path}?limit=1000${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    )) as Record<string, unknown>;
    all.push(...((page[key] as Record<string, unknown>[] | undefined) ?? []));
    cursor = typeof page.next_cursor === 'string' ? page.next_cursor : null;
  } while (cursor);
  return all;
}

export function registerAdminCommands(program: Command): void {
  const token = program.command('token').description('Enrollment tokens (admin).');
  withAdminOptions(token.command('create').description('Create a one-time enrollment token; prints it once.'))
    .addOption(
      new Option(
        '--ttl <duration>',
        `how long it can be used (${showDuration(MIN_TOKEN_TTL_SECONDS)} to ${showDuration(MAX_TOKEN_TTL_SECONDS)}: 30m, 1h, 7d)`,
      )
        .argParser(parseDurationIn('--ttl', MIN_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS))
        .default(DEFAULT_TOKEN_TTL_SECONDS, showDuration(DEFAULT_TOKEN_TTL_SECONDS)),
    )
    .option('--uses <n>', `how many enrollments it allows (1 to ${MAX_TOKEN_USES})`, parseUses, 1)
    .option('--role <role>', 'agent or relay', 'agent')
    .option('--cidr <cidr>', 'allowed source network, e.g. 10.0.0.0/8')
    .option('--name-pattern <glob>', 'allowed agent names, e.g. web-*')
    .option('--label <k=v>', 'label given to the enrolled agent (repeatable)', collectLabel, {})
    .option(
      '--credential-ttl <duration>',
      "lifetime of enrolled agents' keys and credentials (1h to 3660d; default: the server's)",
      parseDurationIn('--credential-ttl', MIN_CREDENTIAL_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS),
    )
    .action(
      async (
        o: AdminOptions & {
          ttl: number;
          uses: number;
          role: string;
          cidr?: string;
          namePattern?: string;
          label: Record<string, string>;
          credentialTtl?: number;
        },
      ) => {
        if (o.role !== 'agent' && o.role !== 'relay') throw new CliError('usage', '--role must be agent or relay', 2);
        const body: Record<string, unknown> = { ttlSeconds: o.ttl, uses: o.uses, role: o.role, labels: o.label };
        if (o.cidr) body.cidr = o.cidr;
        if (o.namePattern) body.namePattern = o.namePattern;
        if (o.credentialTtl !== undefined) body.credentialTtlSeconds = o.credentialTtl;
        const r = (await adminCall(o, 'POST', '/v1/admin/tokens', body)) as { token: string; id: string; expiresAt: string };
        if (o.json) return out(r);
        // The token alone on stdout (TOK=$(latchkey token create) works); the rest on stderr.
        console.log(r.token);
        console.error(
          [
            `token ${r.id} (${o.role}, ${o.uses} use${o.uses === 1 ? '' : 's'}), expires ${r.expiresAt}; shown once: it cannot be recovered.`,
            `On the agent's machine, run:`,
            `  latchkey agent enroll --server ${o.server} --token ${r.token} --state-dir /var/lib/latchkey/agent`,
            ...(isLoopback(new URL(o.server).hostname)
              ? [`(${o.server} is this machine only: give the address agents reach, e.g. --server http://HOST:PORT)`]
              : []),
          ].join('\n'),
        );
      },
    );
  withAdminOptions(token.command('list').description('List tokens and their uses (never secrets).')).action(async (o: AdminOptions) => {
    const r = { tokens: await listAll(o, '/v1/admin/tokens', 'tokens') };
    if (o.json) return out(r.tokens);
    printRows(
      r.tokens.map((t) => ({
        ...t,
        usesLeft: `${String(t.usesLeft)}/${String(t.usesTotal)}`,
        usedBy: (t.uses as { agentId: string; sourceAddr: string | null; usedAt: string }[])
          .map((u) => `${u.agentId}@${u.sourceAddr ?? '?'} ${u.usedAt}`)
          .join('; '),
      })),
      ['id', 'role', 'status', 'usesLeft', 'expiresAt', 'cidr', 'namePattern', 'usedBy'],
    );
  });
  withAdminOptions(token.command('revoke').description('Revoke a token.').argument('<id>', 'token id')).action(
    async (id: string, o: AdminOptions) => {
      const r = await adminCall(o, 'POST', `/v1/admin/tokens/${encodeURIComponent(id)}/revoke`, {});
      if (o.json) out(r);
      else console.log(`revoked token ${id}`);
    },
  );

  const agents = program.command('agents').description('Enrolled agents and relays (admin).');
  withAdminOptions(agents.command('list').description('List agents (filters combine: all must match).'))
    .addOption(new Option('--status <status>', 'as displayed').choices(['active', 'revoked']))
    .addOption(new Option('--role <role>', 'agent or relay').choices(['agent', 'relay']))
    .addOption(new Option('--kind <kind>', "legacy: agents heard through a relay's legacy listener").choices(['enrolled', 'legacy']))
    .option('--label <k=v>', 'carries this label with this value (repeatable)', collectLabel, {})
    .option('--name <glob>', 'name matches this glob (* any run, ? one character)')
    .action(async (o: AdminOptions & { status?: string; role?: string; kind?: string; label: Record<string, string>; name?: string }) => {
      const query = new URLSearchParams();
      if (o.status) query.set('status', o.status);
      if (o.role) query.set('role', o.role);
      if (o.kind) query.set('kind', o.kind);
      for (const [k, v] of Object.entries(o.label)) query.append('label', `${k}=${v}`);
      if (o.name !== undefined) query.set('name', o.name);
      const r = { agents: await listAll(o, '/v1/admin/agents', 'agents', query.size ? `&${query.toString()}` : '') };
      if (o.json) return out(r.agents);
      printRows(
        r.agents.map((a) => ({
          ...a,
          keyIds: (a.keys as { sigKid: string; status: string }[])
            .filter((k) => k.status === 'active')
            .map((k) => k.sigKid)
            .join(','),
          lastRelay: (a.lastRelay as { id: string; name: string | null } | null)?.name ?? (a.lastRelay as { id: string } | null)?.id ?? '',
          legacyId: (a.legacy as { id: string | null } | null)?.id ?? '',
        })),
        [
          'id',
          'name',
          'role',
          'status',
          'labels',
          'keyIds',
          'expiresAt',
          'lastSeenAt',
          'lastRelay',
          ...(o.kind === 'legacy' ? ['legacyId'] : []),
        ],
      );
    });
  withAdminOptions(
    agents
      .command('adopt')
      .description('An enrolled agent takes over a legacy agent\'s history (README "Migrating a GLPI fleet").')
      .argument('<legacy>', 'the legacy agent (id or name)')
      .argument('<agent>', 'the enrolled agent that replaces it (id or name)'),
  ).action(async (legacy: string, agent: string, o: AdminOptions) => {
    const r = (await adminCall(o, 'POST', `/v1/admin/agents/${encodeURIComponent(agent)}/adopt`, { legacy })) as {
      legacy: string;
      agent: string;
      inventories: number;
    };
    if (o.json) return out(r);
    console.log(`${r.agent} adopted ${r.legacy}: ${r.inventories} inventories moved`);
  });
  withAdminOptions(
    agents.command('show').description('One agent: labels, keys, expiry, last seen.').argument('<id|name>', 'agent id or name'),
  ).action(async (ref: string, o: AdminOptions) => {
    const a = (await adminCall(o, 'GET', `/v1/admin/agents/${encodeURIComponent(ref)}`)) as Record<string, unknown> & {
      keys: Record<string, unknown>[];
    };
    if (o.json) return out(a);
    const cell = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
    const fields = [
      'id',
      'name',
      'role',
      'status',
      'labels',
      'createdAt',
      'expiresAt',
      'lastSeenAt',
      'lastPath',
      'revokedAt',
      'renewRequestedAt',
      'tokenId',
    ];
    for (const f of fields) if (f in a) console.log(`${f.padEnd(17)} ${cell(a[f])}`);
    console.log('');
    printRows(a.keys, ['sigKid', 'kxKid', 'status', 'createdAt', 'expiresAt', 'revokedAt', 'revocationReason']);
  });
  withAdminOptions(
    agents
      .command('delete')
      .description('Delete a revoked agent with its keys and inventories, so its name can be used again (audited; the audit log keeps it).')
      .argument('<id|name>', 'agent id or name'),
  ).action(async (ref: string, o: AdminOptions) => {
    const r = (await adminCall(o, 'DELETE', `/v1/admin/agents/${encodeURIComponent(ref)}`)) as {
      id: string;
      name: string;
      keys: number;
      inventories: number;
    };
    if (o.json) out(r);
    else console.log(`deleted agent ${r.id} (${r.name}): ${r.keys} keys, ${r.inventories} inventories`);
  });
  withAdminOptions(
    agents
      .command('import')
      .description(
        'Register agents provisioned elsewhere from JSON lines {"name","signingKey","agreementKey","role"?,"labels"?,"expiresAt"?,"cidr"?}, all or nothing.',
      )
      .argument('<file>', 'the JSON lines file, or - for standard input')
      .option('--dry-run', 'check everything and report what would change; write nothing'),
  ).action(async (file: string, o: AdminOptions & { dryRun?: boolean }) => {
    const ndjson = await readImport(file);
    const r = (await adminCall(o, 'POST', '/v1/admin/agents/import', { ndjson, dryRun: o.dryRun === true })) as {
      dryRun: boolean;
      count: number;
      sha256: string;
      agents: Record<string, unknown>[];
    };
    if (o.json) return out(r);
    if (r.dryRun) {
      printRows(r.agents, ['line', 'name', 'role', 'sigKid']);
      console.log(`dry run: ${r.count} agents would be registered (file sha256 ${r.sha256}); nothing was written`);
    } else console.log(`imported ${r.count} agents (file sha256 ${r.sha256})`);
  });
  withAdminOptions(agents.command('revoke').description('Revoke an agent and all its keys.').argument('<id|name>', 'agent id or name'))
    .option('--reason <text>', 'why (kept in the audit log and shown by keys list)')
    .action(async (id: string, o: AdminOptions & { reason?: string }) => {
      const r = await adminCall(o, 'POST', `/v1/admin/agents/${encodeURIComponent(id)}/revoke`, o.reason ? { reason: o.reason } : {});
      if (o.json) out(r);
      else console.log(`revoked agent ${id}`);
    });
  withAdminOptions(
    agents
      .command('renew-now')
      .description('Ask an agent to renew its keys: its next receipts carry renewNow until it does.')
      .argument('<id|name>', 'agent id or name'),
  ).action(async (id: string, o: AdminOptions) => {
    const r = (await adminCall(o, 'POST', `/v1/admin/agents/${encodeURIComponent(id)}/renew-now`, {})) as {
      id: string;
      renewRequestedAt: string;
    };
    if (o.json) out(r);
    else console.log(`agent ${r.id} asked to renew (${r.renewRequestedAt})`);
  });

  const keys = program.command('keys').description('Agent keys (admin); admin API keys are `latchkey admin keys`.');
  withAdminOptions(keys.command('list').description('List agent keys with their status, lifetime, renewal and revocation.'))
    .option('--agent <id|name>', "only this agent's keys")
    .action(async (o: AdminOptions & { agent?: string }) => {
      const rows = await listAll(o, '/v1/admin/keys', 'keys', o.agent === undefined ? '' : `&agent=${encodeURIComponent(o.agent)}`);
      if (o.json) return out(rows);
      printRows(
        rows.map((k) => ({
          ...k,
          agent: k.agentName,
          supersededUntil: k.supersededUntil ?? '',
          replacedBy: k.replacedBy ?? '',
          revokedAt: k.revokedAt ?? '',
          reason: k.revocationReason ?? '',
        })),
        ['sigKid', 'agent', 'status', 'createdAt', 'expiresAt', 'supersededUntil', 'replacedBy', 'revokedAt', 'reason'],
      );
    });
  withAdminOptions(
    keys
      .command('revoke')
      .description('Revoke one agent key (the agent keeps its other keys).')
      .argument('<kid>', 'signing key id (sigKid)'),
  )
    .requiredOption('--reason <text>', 'why (kept in the audit log and shown by keys list)')
    .action(async (kid: string, o: AdminOptions & { reason: string }) => {
      const r = await adminCall(o, 'POST', `/v1/admin/keys/${encodeURIComponent(kid)}/revoke`, { reason: o.reason });
      if (o.json) out(r);
      else console.log(`revoked key ${kid}`);
    });

  const audit = withAdminOptions(program.command('audit').description('Read the audit log (admin).'))
    .option('--after <seq>', 'entries after this sequence number', '0')
    .option('--limit <n>', 'at most this many entries', '1000')
    .action(async (o: AdminOptions & { after: string; limit: string }) => {
      const r = (await adminCall(o, 'GET', `/v1/admin/audit?after=${Number(o.after) || 0}&limit=${Number(o.limit) || 1000}`)) as {
        entries: Record<string, unknown>[];
      };
      if (o.json) return out(r.entries);
      printRows(r.entries, ['seq', 'at', 'actor', 'action', 'outcome', 'code', 'sourceAddr', 'tokenId', 'agentId']);
    });
  withAdminOptions(
    audit
      .command('verify')
      .description(
        'Recompute the audit hash chain and print its head signed by the server; non-zero exit when broken, or when it no longer passes through --expect-head.',
      ),
  )
    .option(
      '--expect-head <head>',
      'a signed head printed earlier (its JSON, or a file holding it): detects deleted or rewritten newest entries',
    )
    .action(async (o: AdminOptions & { expectHead?: string }) => {
      const r = (
        o.expectHead === undefined
          ? await adminCall(o, 'GET', '/v1/admin/audit/verify')
          : await adminCall(o, 'POST', '/v1/admin/audit/verify', { expectHead: await readHead(o.expectHead) })
      ) as ChainStatus;
      if (o.json) out(r);
      if (!r.ok) {
        if (r.problem === 'truncated')
          throw new CliError('audit_chain_truncated', `audit chain has ${r.entries} entries, fewer than the expected head's`);
        if (r.problem === 'rewritten')
          throw new CliError('audit_chain_rewritten', `audit entry ${r.brokenAt} is not the one the expected head signed`);
        throw new CliError('audit_chain_broken', `audit chain broken at entry ${r.brokenAt}`);
      }
      if (!o.json)
        console.log(
          `audit chain intact: ${r.entries} entries, head ${r.headHash}${o.expectHead === undefined ? '' : ', passes through the expected head'}\nsigned head ${JSON.stringify(r.head)}`,
        );
    });
  withAdminOptions(
    audit
      .command('head')
      .description(
        'Print the audit chain head signed by the server (one JSON line: keep it elsewhere, pass it to `audit verify --expect-head`).',
      ),
  ).action(async (o: AdminOptions) => {
    const r = (await adminCall(o, 'GET', '/v1/admin/audit/head')) as { head: unknown };
    console.log(JSON.stringify(r.head));
  });

  const admin = program.command('admin').description('Admin API keys, and recovery of a lost bootstrap credential.');
  registerAdminBootstrap(admin);
  const adminKeys = admin.command('keys').description('Admin API keys (needs a full admin credential).');
  withAdminOptions(adminKeys.command('create').description('Create an admin API key; prints it once.').argument('<name>'))
    .requiredOption('--scope <scope...>', 'tokens:write, agents:write, read')
    .action(async (name: string, o: AdminOptions & { scope: string[] }) => {
      const r = (await adminCall(o, 'POST', '/v1/admin/admin-keys', { name, scopes: o.scope })) as { credential: string };
      if (o.json) out(r);
      else console.log(r.credential);
    });
  withAdminOptions(adminKeys.command('list').description('List admin API keys.')).action(async (o: AdminOptions) => {
    const r = (await adminCall(o, 'GET', '/v1/admin/admin-keys')) as { keys: Record<string, unknown>[] };
    if (o.json) return out(r.keys);
    printRows(r.keys, ['id', 'name', 'scopes', 'createdAt', 'revokedAt']);
  });
  withAdminOptions(adminKeys.command('revoke').description('Revoke an admin API key.').argument('<id>')).action(
    async (id: string, o: AdminOptions) => {
      const r = await adminCall(o, 'POST', `/v1/admin/admin-keys/${encodeURIComponent(id)}/revoke`);
      if (o.json) out(r);
      else console.log(`revoked admin key ${id}`);
    },
  );
}
