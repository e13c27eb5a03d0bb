// The page that sends (send.js, hashworker.js): the checks before any
// file is read, the chunk size Go would pick, and the hashing worker's
// chunk hashes against Go's, on real modules and real bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { V, needGo, h } from './vectors.mjs';
import { buildManifest, chooseChunkSize, planSend, SendError } from '../web/js/send.js';
import { decodeManifest, openManifest } from '../web/js/manifest.js';
import { verifyChunk } from '../web/js/chain.js';
import { concat, toHex } from '../web/js/bytes.js';
import { MAX_CHUNKS, MAX_FILE_SIZE } from '../web/js/manifest.js';

test('send: the chunk size is chunker.ChooseChunkSize\'s', needGo, () => {
  assert.ok(V.chunkSizes.length > 30);
  for (const { total, size } of V.chunkSizes) assert.equal(chooseChunkSize(total), size, `total ${total}`);
});

test('send: files a receiver would refuse are refused before any is read', () => {
  const refused = (files, re) => assert.throws(() => planSend(files), (e) => e instanceof SendError && re.test(e.message), JSON.stringify(files));
  refused([], /at least one/);
  refused([{ name: 'a', size: 1 }, { name: 'a', size: 2 }], /Two files are named a/);
  refused([{ name: 'a\\b', size: 1 }], /backslash/);
  refused([{ name: 'a\u0007', size: 1 }], /control character/);
  refused([{ name: 'evil\u202egnp.exe', size: 1 }], /bidirectional/);
  refused([{ name: 'x.P2PXFER-PART', size: 1 }], /reserved suffix/);
  refused([{ name: '', size: 1 }], /empty/);
  refused([{ name: '..', size: 1 }], /'\.\.'/);
  refused([{ name: 'a', size: MAX_FILE_SIZE + 1 }], /too large/);
  refused([{ name: 'a', size: -1 }], /too large/);
  refused([{ name: 'a', size: 1.5 }], /too large/);
  // More chunks than a manifest holds, even at the largest chunk size.
  const big = Array.from({ length: 5 }, (_, i) => ({ name: `f${i}`, size: MAX_FILE_SIZE }));
  assert.ok(big.reduce((n, f) => n + Math.ceil(f.size / chooseChunkSize(5 * MAX_FILE_SIZE)), 0) > MAX_CHUNKS);
  refused(big, /too large to send together/);

  const files = [{ name: 'a.bin', size: 3 << 20 }, { name: 'empty', size: 0 }, { name: 'ünï ✓', size: 1 }];
  assert.deepEqual(planSend(files), { total: (3 << 20) + 1, chunkSize: chooseChunkSize((3 << 20) + 1) });
});

// The hashing worker in a node worker thread, with the one Web Worker
// global it uses bridged to worker_threads.
const bootstrap = `
import { parentPort } from 'node:worker_threads';
globalThis.self = { postMessage: (m) => parentPort.postMessage(m) };
await import(${JSON.stringify(new URL('../web/js/hashworker.js', import.meta.url).href)});
parentPort.on('message', (data) => self.onmessage({ data }));
`;

test('send: the hashing worker gives every chunk hash Go gives, reading a file in slices', needGo, async () => {
  const v = V.manifest;
  const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`));
  try {
    const hash = (file, chunkSize) => new Promise((resolve) => {
      const progress = [];
      const on = (r) => {
        if (r.progress !== undefined) {
          progress.push(r.progress);
          return;
        }
        w.off('message', on);
        resolve({ ...r, progress });
      };
      w.on('message', on);
      w.postMessage({ id: 7, file, chunkSize });
    });
    for (const [fi, f] of v.files.entries()) {
      const parts = v.chunks.filter((c) => c.file === fi);
      const data = concat(...parts.map((c) => h(c.data)));
      const r = await hash(new Blob([data]), v.chunkSize);
      assert.equal(r.id, 7);
      assert.equal(r.error, undefined);
      assert.equal(toHex(r.sha256), f.sha256, f.name);
      assert.deepEqual(r.chunks.map(toHex), parts.map((c) => c.hash), f.name);
      assert.equal(r.progress.at(-1) ?? 0, data.length);
    }
    // The picked files as the page sends them: checked, hashed in the
    // worker, built into a manifest a receiver decodes, whose every chunk
    // verifies against the files' bytes, with Go's hashes.
    const goM = await openManifest(h(v.publicKey), v.room, h(v.signed));
    const picked = v.files.map((f, fi) => ({ name: f.name.split('/').pop(), size: f.size, data: concat(...v.chunks.filter((c) => c.file === fi).map((c) => h(c.data))) }));
    planSend(picked);
    const hashed = [];
    for (const f of picked) hashed.push(await hash(new Blob([f.data]), v.chunkSize));
    const m = decodeManifest(buildManifest(v.chunkSize, picked, hashed).encoded);
    assert.equal(m.files.length, picked.length);
    m.files.forEach((f, fi) => {
      assert.equal(f.name, picked[fi].name);
      assert.equal(toHex(f.hashes), toHex(goM.files[fi].hashes), f.name);
      const { first, count } = m.fileChunks(fi);
      for (let i = first; i < first + count; i++) {
        const ref = m.chunk(i);
        assert.ok(verifyChunk(ref, picked[fi].data.subarray(ref.offset, ref.offset + ref.size)), `${f.name} chunk ${i}`);
      }
    });
    // Hashes that do not fit the sizes are refused in words.
    assert.throws(() => buildManifest(v.chunkSize, picked, hashed.slice(1).concat([hashed[0]])), (e) => e instanceof SendError && /cannot be sent/.test(e.message));
    // Something that is no file: an error in words, not a dead worker.
    const r = await hash(null, v.chunkSize);
    assert.equal(r.id, 7);
    assert.match(r.error, /TypeError/);
  } finally {
    await w.terminate();
  }
});
