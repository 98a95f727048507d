// MariaDB for the key source tests (127.0.0.1:3306, root, no password, database `test`): started
// when it is down, as .ci/run does.
import { spawnSync } from 'node:child_process';
import mysql from 'mysql2/promise';

const CONFIG = { host: '127.0.0.1', port: 3306, user: 'root', password: '' };

async function reachable(): Promise<boolean> {
  try {
    const c = await mysql.createConnection(CONFIG);
    await c.end();
    return true;
  } catch {
    return false;
  }
}

/** A connection to the database `test` (created if missing), after starting MariaDB if needed. */
export async function connectMariaDb(): Promise<mysql.Connection> {
  if (!(await reachable())) {
    spawnSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd'], { stdio: 'ignore' });
    const deadline = Date.now() + 30_000;
    while (!(await reachable())) {
      if (Date.now() > deadline) throw new Error('MariaDB did not start on 127.0.0.1:3306');
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const c = await mysql.createConnection(CONFIG);
  await c.query('CREATE DATABASE IF NOT EXISTS test');
  await c.changeUser({ database: 'test' });
  return c;
}
