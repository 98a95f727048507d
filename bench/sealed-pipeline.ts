// The sealed path's CPU work per message without HTTP and the database: body bytes → JSON →
// envelope → signature → open, gunzip, checks, GLPI schema → binding → receipt body → signed
// receipt → JSON, against its crypto floor (one Ed25519 verify, one X25519 with a fresh peer key,
// one Ed25519 signature) measured in interleaved blocks of 100, so that both see the same machine:
// on a loaded machine the ratio and the difference are what mean something, not the microseconds.
//   node --import tsx bench/sealed-pipeline.ts [MESSAGES]
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { sealEnvelope, parseEnvelope, verifyEnvelopeSignature } from '../src/protocol/envelope.js';
import { generateKeySet } from '../src/protocol/keys.js';
import { createNodeCrypto } from '../src/runtime/node-crypto.js';
import { envelopeDigest } from '../src/protocol/relay.js';
import { fromUtf8, fromB64u, b64u } from '../src/protocol/bytes.js';
import { gunzipBounded } from '../src/runtime/zlib.js';
import { receiptBody } from '../src/protocol/receipt.js';
import { signObject } from '../src/protocol/signed.js';
import { inventoryOfSize } from '../bench/fixtures.js';
import { unsealInventory } from '../src/server/services/unseal.js';

const crypto = createNodeCrypto();
const ctx = { crypto, random: (n: number) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
const agents = await Promise.all(Array.from({ length: 64 }, () => generateKeySet(ctx)));
const server = await generateKeySet(ctx);
const inventory = inventoryOfSize(4096, 'bench-4096');
const N = Number(process.argv[2] ?? 3000);
const raws: Uint8Array[] = [];
for (let i = 0; i < N; i++) {
  const agent = agents[i % agents.length]!;
  const { envelope } = await sealEnvelope(ctx, {
    sender: agent,
    recipient: { publicKey: server.agreement.publicKey, kid: server.agreement.kid },
    type: 'inventory',
    contentType: 'application/json',
    contentEncoding: 'gzip',
    counter: i + 1,
    plaintext: new Uint8Array(gzipSync(inventory)),
  });
  raws.push(new TextEncoder().encode(JSON.stringify(envelope)));
}
async function one(i: number) {
  const agent = agents[i % agents.length]!;
  const env = parseEnvelope(JSON.parse(fromUtf8(raws[i]!)));
  fromB64u(env.header.mid);
  await verifyEnvelopeSignature(ctx, env, agent.signing.publicKey);
  const { text } = await unsealInventory(ctx, server.agreement, {
    env,
    senderAgreementKey: agent.agreement.publicKey,
    maxContentBytes: 1 << 24,
    gunzip: gunzipBounded,
  });
  const binding = envelopeDigest(env, crypto);
  const body = await receiptBody(
    ctx,
    { mid: env.header.mid, snd: env.header.snd, env: b64u(binding), status: 'accepted', rat: Date.now() },
    agent.agreement.publicKey,
  );
  return JSON.stringify(await signObject(crypto, server.signing, 'receipt', body)).length + text.length;
}
// The floor, interleaved in blocks with the pipeline so both see the same machine: one Ed25519
// verify, one X25519 with a fresh peer key, one Ed25519 signature.
const sig = await crypto.ed25519Sign(agents[0]!.signing.privateKey, raws[0]!);
const peers = await Promise.all(Array.from({ length: 256 }, async () => crypto.x25519PublicKey(ctx.random(32))));
async function floor(i: number) {
  await crypto.ed25519Verify(agents[0]!.signing.publicKey, raws[0]!, sig);
  await crypto.x25519(server.agreement.privateKey, peers[i % 256]!);
  await crypto.ed25519Sign(server.signing.privateKey, raws[i]!.subarray(0, 200));
}
for (let i = 0; i < 500; i++) {
  await one(i);
  await floor(i);
}
let tp = 0,
  tf = 0;
for (let b = 0; b < N; b += 100) {
  let a = process.cpuUsage();
  for (let i = b; i < Math.min(N, b + 100); i++) await one(i);
  let d = process.cpuUsage(a);
  tp += d.user + d.system;
  a = process.cpuUsage();
  for (let i = b; i < Math.min(N, b + 100); i++) await floor(i);
  d = process.cpuUsage(a);
  tf += d.user + d.system;
}
console.log(
  JSON.stringify({
    pipelineUs: Number((tp / N).toFixed(1)),
    floorUs: Number((tf / N).toFixed(1)),
    aboveFloorUs: Number(((tp - tf) / N).toFixed(1)),
    ratio: Number((tp / tf).toFixed(3)),
  }),
);
