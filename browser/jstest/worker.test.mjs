// The verify worker, run in a node worker thread with the few Web Worker
// globals it uses bridged to worker_threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { V, needGo, h } from './vectors.mjs';
import { openManifest } from '../web/js/manifest.js';

const bootstrap = `
import { parentPort } from 'node:worker_threads';
globalThis.self = { postMessage: (m, t) => parentPort.postMessage(m, t) };
await import(${JSON.stringify(new URL('../web/js/verifyworker.js', import.meta.url).href)});
parentPort.on('message', (data) => self.onmessage({ data }));
`;

test('verify worker checks chunks and hands the bytes back', needGo, async () => {
  const m = await openManifest(h(V.manifest.publicKey), V.manifest.room, h(V.manifest.signed));
  const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`));
  try {
    const ask = (msg, transfer) => new Promise((resolve) => {
      w.once('message', resolve);
      w.postMessage(msg, transfer);
    });
    for (const c of V.manifest.chunks) {
      const data = h(c.data);
      const r = await ask({ id: c.index, ref: m.chunk(c.index), data }, [data.buffer]);
      assert.equal(r.id, c.index);
      assert.equal(r.ok, true, `chunk ${c.index}`);
      assert.equal(Buffer.from(r.data).toString('hex'), c.data);
      const bad = h(c.data);
      bad[0] ^= 1;
      assert.equal((await ask({ id: 1, ref: m.chunk(c.index), data: bad }, [bad.buffer])).ok, false);
    }
    assert.equal((await ask({ id: 2, ref: null, data: new Uint8Array(3) })).ok, false);
    assert.equal((await ask(null)).ok, false);
  } finally {
    await w.terminate();
  }
});
