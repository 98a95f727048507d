// `npm run bench`: every benchmark, one JSON document on stdout. Figures, never assertions.
import { benchCrypto } from './crypto.js';
import { benchEnvelope } from './envelope.js';
import { benchEnroll } from './enroll.js';
import { benchForward } from './forward.js';
import { benchIngest } from './ingest.js';
import { benchRelay } from './relay.js';
import { benchRenew } from './renew.js';
import { benchValidate } from './validate.js';
import { benchProvisioning } from './provisioning.js';
import { benchStartup } from './startup.js';
import { benchWorkers } from './workers.js';
import { nobleCrypto } from '../src/protocol/crypto/noble.js';
import { createWebCrypto } from '../src/protocol/crypto/webcrypto.js';
import { nodeChaCha20Poly1305 } from '../src/runtime/node-aead.js';
import { createNodeCrypto } from '../src/runtime/node-crypto.js';

const only = new Set(process.argv.slice(2).filter((a) => !a.startsWith('--')));
const want = (name: string) => only.size === 0 || only.has(name);

const result: Record<string, unknown> = {
  machine: { node: process.version, platform: `${process.platform}-${process.arch}` },
  startedAt: new Date().toISOString(),
};
if (want('crypto')) result.crypto = await benchCrypto();
if (want('envelope')) {
  result.envelope = await benchEnvelope([
    { name: 'noble', crypto: nobleCrypto },
    { name: 'webcrypto', crypto: createWebCrypto({ aead: nodeChaCha20Poly1305 }) },
    { name: 'node', crypto: createNodeCrypto() },
  ]);
}
if (want('enroll')) result.enroll = await benchEnroll();
if (want('ingest')) result.ingest = await benchIngest();
if (want('forward')) result.forward = await benchForward();
if (want('renew')) result.renew = await benchRenew();
if (want('validate')) result.validate = benchValidate();
if (want('relay')) result.relay = await benchRelay();
if (want('provisioning')) result.provisioning = await benchProvisioning();
if (want('startup')) result.startup = await benchStartup();
if (want('workers')) result.workers = await benchWorkers();
console.log(JSON.stringify(result, null, 2));
