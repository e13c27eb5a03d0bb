// Folder paths: what a save into a chosen folder refuses, the flat names
// of files saved on their own, and the sending page's order, which must
// be chunker's (tree.go) so a browser-sent folder matches `send DIR`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathProblem, flatName, treeCompare, Selection } from '../web/js/folders.js';

test('folders: paths that could climb out or confuse are refused', () => {
  for (const ok of ['a', 'top/sub/file.txt', 'a b/c d', 'x..y/..z', 'ünï/çødé']) assert.equal(pathProblem(ok), '', ok);
  for (const bad of ['', '/etc/passwd', 'C:/x', 'c:x', '..', 'a/../b', 'a/./b', '.', 'a//b', 'a/', '/a', 'a\\b', 'a/..\\..', 'a\0b']) {
    assert.notEqual(pathProblem(bad), '', JSON.stringify(bad));
  }
  assert.equal(pathProblem(42), 'an empty path');
});

test('folders: a file saved on its own keeps its path in its name', () => {
  assert.equal(flatName('one.txt'), 'one.txt');
  assert.equal(flatName('top/sub/file.txt'), 'top - sub - file.txt');
});

test("folders: chunker's order, files of a folder before its subfolders", () => {
  const names = ['p/aa/z.txt', 'p/2024/may/y.raw', 'p/b.jpg', 'p/2024/x.raw', 'p/a.jpg', 'p/Z', 'p/é', 'p/f'];
  names.sort(treeCompare);
  // Bytewise, as Go's sort of names: 'Z' < 'f' < 'é' (0xc3 0xa9).
  assert.deepEqual(names, ['p/Z', 'p/a.jpg', 'p/b.jpg', 'p/f', 'p/é', 'p/2024/x.raw', 'p/2024/may/y.raw', 'p/aa/z.txt']);
});

test('folders: a picked folder goes under its name; names a receiver cannot hold are left out', () => {
  const f = (rel) => ({ name: rel.split('/').pop(), webkitRelativePath: rel, size: 1 });
  const s = Selection.fromPicked([f('top/sub/b'), f('top/a'), f('top/x\u202ey'), f('top/state.p2pxfer-part')]);
  assert.deepEqual(s.files.map((x) => x.name), ['top/a', 'top/sub/b']);
  assert.equal(s.skipped.length, 2);
  const plain = Selection.fromPicked([{ name: 'one.txt', webkitRelativePath: '', size: 1 }]);
  assert.deepEqual(plain.files.map((x) => x.name), ['one.txt']);
});
