// Reports are written whole or not at all: into a temporary file in the target's folder (so the
// rename stays on one file system), flushed, then renamed over the target. Only a regular file
// is ever replaced (never a device, FIFO, socket or folder; a symlink keeps pointing where it
// did), and a signal during the write removes the temporary file before the process dies.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { TorchGraphError } from '../core/errors';

/** A report path that cannot be written (ERR_INVALID_ARG: the caller's mistake). */
export class ReportPathError extends TorchGraphError {
  constructor(message: string) {
    super('ERR_INVALID_ARG', message);
    this.name = 'ReportPathError';
  }
}

function lstatOrUndefined(p: string, what: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') throw new ReportPathError(`${what}: a parent of it is not a folder`);
    throw new ReportPathError(`${what}: cannot be checked (${code ?? String(e)})`);
  }
}

/** The file a symlink finally names (the link is kept; its target is replaced). */
function followLink(target: string, what: string): { real: string; st: fs.Stats | undefined } {
  let real: string;
  try {
    real = fs.realpathSync(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new ReportPathError(`${what}: is a symlink loop`);
    throw new ReportPathError(`${what}: is a symlink to nothing (${code ?? String(e)})`);
  }
  return { real, st: fs.statSync(real) };
}

function writable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Check that `file` can be written as a report before any work is done, and return the path
 * the rename will replace. Refused: '', a name ending in a slash, a folder, anything that is not
 * a regular file (a device, FIFO, socket, a symlink to one), a file or folder not writable.
 */
export function checkReportTarget(file: string, what = `report ${JSON.stringify(file)}`): string {
  if (typeof file !== 'string' || file === '') throw new ReportPathError(`${what}: empty path; give a file name such as report.html`);
  if (file.includes('\0')) throw new ReportPathError(`${what}: the path holds a NUL character`);
  const base = path.basename(file);
  if (/[\\/]$/.test(file) || base === '.' || base === '..') throw new ReportPathError(`${what}: names a folder; give a file name such as report.html`);
  let target = path.resolve(file);
  let st = lstatOrUndefined(target, what);
  if (st?.isSymbolicLink()) ({ real: target, st } = followLink(target, what));
  if (st?.isDirectory()) throw new ReportPathError(`${what}: is a folder; give a file name such as report.html`);
  if (st && !st.isFile()) throw new ReportPathError(`${what}: is not a regular file (a device, FIFO or socket); it is never replaced`);
  if (st && !writable(target)) throw new ReportPathError(`${what}: the file is not writable`);
  const dir = path.dirname(target);
  const dirSt = lstatOrUndefined(dir, what);
  if (!dirSt) throw new ReportPathError(`${what}: folder ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new ReportPathError(`${what}: ${dir} is not a folder`);
  if (!writable(dir)) throw new ReportPathError(`${what}: folder ${dir} is not writable`);
  return target;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const CHUNK = 1 << 20;

/**
 * Write `data` to `file` whole or not at all. The target is checked again (checkReportTarget)
 * right before; rejects with ReportPathError when it cannot be written. A SIGINT, SIGTERM or
 * SIGHUP during the write removes the temporary file, then the signal takes its usual course.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const target = checkReportTarget(file);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('writeFileAtomic: data must be a string or a Uint8Array');
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  const onSignal = (sig: NodeJS.Signals) => {
    try { fs.unlinkSync(tmp); } catch { /* not created yet, or already renamed */ }
    stopListening();
    // Nobody else handles it: let it do what it would have done (end the process).
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const stopListening = () => { for (const s of SIGNALS) process.removeListener(s, onSignal); };
  for (const s of SIGNALS) process.on(s, onSignal);
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, 'wx', 0o644);
    // In chunks, so that a signal is handled during a long write, not after it.
    for (let off = 0; off < bytes.length; off += CHUNK) await fh.write(bytes, off, Math.min(CHUNK, bytes.length - off));
    await fh.sync();
    await fh.close();
    fh = undefined;
    // Checked again: the target may have been replaced by something else during the run.
    const st = lstatOrUndefined(target, `report ${JSON.stringify(file)}`);
    if (st && !st.isFile()) throw new ReportPathError(`report ${JSON.stringify(file)}: is no longer a regular file; it is never replaced`);
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fh !== undefined) await fh.close().catch(() => { /* already failing */ });
    try { fs.unlinkSync(tmp); } catch { /* never created, or already renamed */ }
    // A folder that passed the checks and still takes no file (/proc, a read-only mount).
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && ['ENOENT', 'EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT'].includes(code)) {
      throw new ReportPathError(`report ${JSON.stringify(file)}: cannot be written in ${path.dirname(target)} (${code})`);
    }
    throw e;
  } finally {
    stopListening();
  }
}
