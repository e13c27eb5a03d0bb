// Folders: a received tree saved as a tree, and a tree picked or dropped
// on the sending page named as `p2pxfer send DIR` names it (chunker's
// tree.go): every file under the folder's own name, "photos/2024/a.jpg",
// files numbered depth-first with a folder's entries sorted by name and
// its files before its subfolders, empty folders listed in the manifest's
// dirs, and entries whose names a receiver could not hold left out and
// reported.
//
// What scales with the file count here is one small record per file (its
// path and File), as the manifest itself does.

import { nameProblem, reservedProblem, MAX_FILES, MAX_DIRS } from './manifest.js';
import { utf8 } from './bytes.js';

/** A save or a pick that cannot go ahead, in words for people. */
export class FolderError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FolderError';
  }
}

/**
 * Why path cannot be created under a chosen folder, or "". The manifest
 * was checked when it arrived; this checks again, component by
 * component, right before anything is created: no absolute path, no empty,
 * '.' or '..' component, no separator or NUL inside one.
 */
export function pathProblem(path) {
  if (typeof path !== 'string' || path === '') return 'an empty path';
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'an absolute path';
  for (const comp of path.split('/')) {
    if (comp === '') return "an empty path component (leading, trailing or double '/')";
    if (comp === '.' || comp === '..') return `a '${comp}' path component`;
    if (comp.includes('\\') || comp.includes('\0')) return 'a separator or NUL inside a path component';
  }
  return '';
}

/**
 * The name a file saved on its own gets in a flat downloads folder: its
 * path with " - " between the folders, so that where it came from stays
 * visible and two files of the same name in different folders stay apart.
 */
export function flatName(path) {
  return path.split('/').join(' - ');
}

// lookup says what is at path under dir now, creating nothing: 'none',
// 'file', 'dir', or 'blocked' (a file stands where one of its folders goes).
async function lookup(dir, comps) {
  let d = dir;
  for (let i = 0; i < comps.length; i++) {
    const last = i === comps.length - 1;
    try {
      if (!last) {
        d = await d.getDirectoryHandle(comps[i]);
        continue;
      }
      await d.getFileHandle(comps[i]);
      return 'file';
    } catch (e) {
      if (e?.name === 'NotFoundError') return 'none';
      if (e?.name === 'TypeMismatchError') return last ? 'dir' : 'blocked';
      throw e;
    }
  }
  return 'dir'; // no components: dir itself
}

async function lookupDir(dir, comps) {
  let d = dir;
  for (const c of comps) {
    try {
      d = await d.getDirectoryHandle(c);
    } catch (e) {
      if (e?.name === 'NotFoundError') return 'none';
      if (e?.name === 'TypeMismatchError') return 'blocked';
      throw e;
    }
  }
  return 'dir';
}

async function makeDirs(dir, comps) {
  let d = dir;
  for (const c of comps) d = await d.getDirectoryHandle(c, { create: true });
  return d;
}

/**
 * Saves files ([{name, blob: () => Promise<Blob>}], names as in the
 * manifest) and the empty folders dirs under dir, a
 * FileSystemDirectoryHandle (from showDirectoryPicker, or the private file
 * system in tests), recreating their folders. Every path is checked first
 * (pathProblem), then what already exists is found before anything is
 * created: a file of the same name is never replaced unless ask(names)
 * (the paths that exist) resolves 'replace'; 'skip' keeps them and saves
 * the rest, 'cancel' saves nothing. A folder where a file goes, or a file
 * where a folder goes, stops the save before it starts. Each file is
 * written to the browser's temporary file and only then put in place, so
 * a failure leaves no partial file under its name. progress(done, n) hears
 * of every file. Resolves with {saved, skipped, cancelled}.
 */
export async function saveToDirectory(dir, files, dirs = [], { ask, progress } = {}) {
  for (const p of [...files.map((f) => f.name), ...dirs]) {
    const why = pathProblem(p);
    if (why) throw new FolderError(`Nothing was saved: the sender's list holds ${JSON.stringify(p)}, ${why}.`);
  }
  const existing = [];
  for (const f of files) {
    const comps = f.name.split('/');
    const at = await lookup(dir, comps);
    if (at === 'file') existing.push(f.name);
    else if (at === 'dir') throw new FolderError(`Nothing was saved: the chosen folder has a folder named ${f.name} where that file goes.`);
    else if (at === 'blocked') throw new FolderError(`Nothing was saved: the chosen folder has a file where a folder of ${f.name} goes.`);
  }
  for (const d of dirs) {
    if ((await lookupDir(dir, d.split('/'))) === 'blocked') {
      throw new FolderError(`Nothing was saved: the chosen folder has a file where the folder ${d} goes.`);
    }
  }
  let keep = new Set();
  if (existing.length > 0) {
    const choice = ask ? await ask(existing) : 'cancel';
    if (choice === 'cancel') return { saved: 0, skipped: 0, cancelled: true };
    if (choice === 'skip') keep = new Set(existing);
    else if (choice !== 'replace') throw new FolderError(`unknown choice ${choice}`);
  }
  let saved = 0;
  for (const f of files) {
    if (keep.has(f.name)) continue;
    const comps = f.name.split('/');
    const parent = await makeDirs(dir, comps.slice(0, -1));
    const fh = await parent.getFileHandle(comps[comps.length - 1], { create: true });
    const w = await fh.createWritable();
    await (await f.blob()).stream().pipeTo(w);
    saved++;
    progress?.(saved + keep.size, files.length);
  }
  for (const d of dirs) await makeDirs(dir, d.split('/'));
  return { saved, skipped: keep.size, cancelled: false };
}

// --- sending a folder -------------------------------------------------

function cmpBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * Orders paths of one tree as chunker's walk numbers them: depth-first,
 * a folder's files (by name, bytewise) before its subfolders (by name).
 */
export function treeCompare(a, b) {
  const ca = a.split('/');
  const cb = b.split('/');
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    if (ca[i] === cb[i]) continue;
    const fa = i === ca.length - 1;
    const fb = i === cb.length - 1;
    if (fa !== fb) return fa ? -1 : 1;
    return cmpBytes(utf8(ca[i]), utf8(cb[i]));
  }
  return ca.length - cb.length;
}

/**
 * The sending page's selection: files [{file, name}] in chunker's order,
 * dirs the empty folders, skipped the paths left out (with why).
 */
export class Selection {
  constructor() {
    this.files = [];
    this.dirs = [];
    this.skipped = [];
    this.roots = 0;
  }

  // add keeps one file at path of root r, or notes why not. A bad name
  // inside a folder is left out, as the CLI leaves it out; a bad name
  // picked on its own is the manifest's to refuse, in words.
  #add(file, path, r, inTree) {
    const why = nameProblem(path) || reservedProblem(path);
    if (why && inTree) {
      this.skipped.push(`${path} (${why})`);
      return;
    }
    if (this.files.length >= MAX_FILES) throw new FolderError(`More than ${MAX_FILES} files: send fewer at a time.`);
    this.files.push({ file, name: path, root: r });
  }

  #order() {
    this.files.sort((x, y) => x.root - y.root || treeCompare(x.name, y.name));
    this.dirs.sort((x, y) => cmpBytes(utf8(x), utf8(y)));
    for (const f of this.files) delete f.root;
  }

  /**
   * From an <input type=file> (with webkitdirectory, each File has its
   * webkitRelativePath under the picked folder's name).
   */
  static fromPicked(list) {
    const s = new Selection();
    for (const f of list) {
      const rel = f.webkitRelativePath || '';
      s.#add(f, rel || f.name, 0, rel !== '');
    }
    s.#order();
    return s;
  }

  /**
   * From a drop: the entries (DataTransferItem.webkitGetAsEntry, which
   * must be taken while the drop event runs), walked in full. Files
   * without an entry come as plain files.
   */
  static async fromEntries(entries, plain = []) {
    const s = new Selection();
    let r = 0;
    for (const e of entries) {
      if (!e) continue;
      if (e.isFile) s.#add(await entryFile(e), e.name, r++, false);
      else if (e.isDirectory) await s.#walk(e, e.name, r++);
    }
    for (const f of plain) s.#add(f, f.name, r++, false);
    s.#order();
    return s;
  }

  async #walk(dirEntry, path, r) {
    const children = await readAll(dirEntry);
    let kept = 0;
    for (const c of children) {
      const p = `${path}/${c.name}`;
      if (c.isFile) {
        const before = this.files.length;
        this.#add(await entryFile(c), p, r, true);
        kept += this.files.length - before;
      } else if (c.isDirectory) {
        const why = nameProblem(p) || reservedProblem(p);
        if (why) {
          this.skipped.push(`${p}/ (${why})`);
          continue;
        }
        await this.#walk(c, p, r);
        kept++;
      }
    }
    if (kept === 0) {
      if (this.dirs.length >= MAX_DIRS) throw new FolderError(`More than ${MAX_DIRS} empty folders: send fewer at a time.`);
      this.dirs.push(path);
    }
  }
}

function entryFile(e) {
  return new Promise((resolve, reject) => e.file(resolve, reject));
}

// readAll lists a folder entry: readEntries gives a batch per call, an
// empty one at the end.
async function readAll(dirEntry) {
  const reader = dirEntry.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return out;
    out.push(...batch);
    if (out.length > MAX_FILES + MAX_DIRS) throw new FolderError('A dropped folder holds too many entries: send fewer at a time.');
  }
}
