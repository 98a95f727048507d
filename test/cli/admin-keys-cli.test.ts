// `latchkey admin keys create|list|revoke` (the real binary) against the real app over HTTP: admin
// API keys live at /v1/admin/admin-keys; /v1/admin/keys is for agent keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { runCli } from '../helpers/process.js';

describe.each(dbKinds)('admin keys CLI on %s', (kind) => {
  let server: TestServer;
  const routes: string[] = [];
  beforeAll(async () => {
    server = await startTestServer(kind, {
      telemetry: { request: (method, route, status) => routes.push(`${method} ${route} ${status}`), count: () => {} },
    });
  });
  afterAll(() => server.close());

  it('creates, lists and revokes admin API keys through /v1/admin/admin-keys', async () => {
    const env = { LATCHKEY_SERVER: server.url, LATCHKEY_ADMIN_TOKEN: server.adminToken };
    const created = await runCli(['admin', 'keys', 'create', 'reader', '--scope', 'read', '--json'], env);
    expect(created.code).toBe(0);
    const { id } = JSON.parse(created.stdout) as { id: string };
    const listed = await runCli(['admin', 'keys', 'list', '--json'], env);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((k) => k.id)).toContain(id);
    expect((await runCli(['admin', 'keys', 'revoke', id], env)).code).toBe(0);
    expect(routes).toEqual(['POST /v1/admin/admin-keys 201', 'GET /v1/admin/admin-keys 200', 'POST /v1/admin/admin-keys/:id/revoke 200']);
    // A scope the server does not know: the code, on stderr, and a non-zero exit.
    const bad = await runCli(['admin', 'keys', 'create', 'x', '--scope', 'everything'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('request_invalid');
  });
});
