import { PGlite } from '@electric-sql/pglite';
import { readFileSync } from 'node:fs';
const mode = process.argv[2];
const c0 = process.cpuUsage(); const t0 = performance.now();
const db = mode === 'fresh' ? await PGlite.create() : await PGlite.create({ loadDataDir: new Blob([readFileSync(process.argv[3])]) });
await db.query('select 1');
const c = process.cpuUsage(c0);
console.log(mode, 'wall', Math.round(performance.now() - t0), 'cpu', Math.round((c.user + c.system) / 1000), 'rss', Math.round(process.memoryUsage().rss / 2**20));
