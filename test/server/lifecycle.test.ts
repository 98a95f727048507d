// The lifecycle scenario (test/helpers/scenario.ts) on Node, on PGlite and PostgreSQL; the Worker
// runs the same steps in test/runtime/worker.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { runLifecycleScenario } from '../helpers/scenario.js';

describe.each(dbKinds)('the lifecycle scenario on Node with %s', (kind) => {
  let server: TestServer;
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-lifecycle-'));
    server = await startTestServer(kind);
  });
  afterEach(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('enrolls, sends, refuses the replay, refuses after revocation, keeps its budgets across requests', async () => {
    await runLifecycleScenario({ url: server.url, adminToken: server.adminToken, stateDir: dir });
  });
});
