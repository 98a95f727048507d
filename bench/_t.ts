import { gzipSync } from 'node:zlib';
import { getJson, postJson } from '../src/agent/http.js';
import { pinServer } from '../src/protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse } from '../src/protocol/enrollment.js';
import { sealEnvelope } from '../src/protocol/envelope.js';
import { generateKeySet } from '../src/protocol/keys.js';
import { parseToken } from '../src/protocol/token.js';
import { createToken, inventoryOfSize, startBenchServer } from './fixtures.js';
const server = await startBenchServer({ ingestPolicy: { messageBurst: 1e9, messagesPerSecond: 1e9, byteBurst: 1e15, bytesPerSecond: 1e15 } });
const t = parseToken(await createToken(server, 1));
const pinned = pinServer(await getJson(`${server.url}/.well-known/latchkey`), t.serverFingerprint);
const keys = await generateKeySet(server.ctx);
const { request, nonce } = await sealEnrollRequest(server.ctx, t, pinned, keys, 'a');
await verifyEnrollResponse(server.ctx.crypto, pinned, await postJson(`${server.url}/v1/enroll`, request), nonce);
const inv = inventoryOfSize(4096, 'x');
const envs = [];
for (let i = 0; i < 30; i++) envs.push((await sealEnvelope(server.ctx, { sender: keys, recipient: server.identity.agreement, type: 'inventory', contentType: 'application/json', contentEncoding: 'gzip', counter: i + 1, plaintext: new Uint8Array(gzipSync(inv)) })).envelope);
for (const e of envs) { const s = performance.now(); await postJson(`${server.url}/v1/messages`, e); console.error('total', (performance.now() - s).toFixed(2)); }
await server.close();
