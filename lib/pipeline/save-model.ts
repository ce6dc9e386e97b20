// Writing an optimized model: a flat module (its weights as buffers, the portable graph as its
// forward) saved by libtorch to a temporary name beside the target and renamed into place, so a
// file appears whole or not at all, and an existing one is replaced only when asked.
import type { ArgumentInfo } from '../torchscript/arguments';
import * as fs from 'fs';
import * as path from 'path';
import type { Graph } from '../core/ir';
import { binding, type NativeTensor } from '../torchscript/binding';
import { native, nativeSync, TorchGraphError } from '../core/errors';
import { ownedModuleSpec } from '../fusion/own-weights';

/** Checks `file` can be written: a non-empty path in an existing folder, not an existing file unless `overwrite`. */
export function checkTarget(file: unknown, overwrite: boolean, what = 'save(path)', toReplace = 'pass { overwrite: true }'): string {
  if (typeof file !== 'string' || file.length === 0 || file.includes('\0')) {
    throw new TorchGraphError('ERR_INVALID_ARG', `${what}: path must be a non-empty string`);
  }
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new TorchGraphError('ERR_INVALID_ARG', `${what}: the folder ${dir} does not exist`);
  }
  if (fs.existsSync(file)) {
    if (fs.statSync(file).isDirectory()) throw new TorchGraphError('ERR_INVALID_ARG', `${what}: ${file} is a directory`);
    if (!overwrite) {
      throw new TorchGraphError('ERR_INVALID_ARG',
        `${what}: ${file} exists (${toReplace} to replace it)`);
    }
  }
  return path.resolve(file);
}

/**
 * Runs `write` on a path of `name` in a fresh hidden folder beside `file` (the same file system,
 * so the rename into place is atomic; the same base name, which both archive formats use for
 * their inner folder), then renames it to `file`. The folder goes either way.
 */
export async function writeBeside(file: string, write: (tmp: string) => Promise<void>, name = path.basename(file)): Promise<void> {
  const dir = fs.mkdtempSync(path.join(path.dirname(file), `.${path.basename(file)}.tmp-`));
  try {
    const tmp = path.join(dir, name);
    await write(tmp);
    if (name === path.basename(file)) fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `graph` (reading `tensors` as attributes of the flat module) saved as TorchScript at `file`,
 * with `metadata` as torchgraph.json.
 */
export async function saveTorchScript(file: string, graph: Graph, tensors: ReadonlyMap<string, NativeTensor>, metadata: unknown,
  device: string, signature?: readonly ArgumentInfo[]): Promise<void> {
  const m = nativeSync(() => binding().createModule(ownedModuleSpec(graph, tensors, signature), device));
  try {
    await writeBeside(file, (tmp) => native(() => m.save(tmp, JSON.stringify(metadata))));
  } finally {
    m.dispose();
  }
}

/** Writes a torch.export program at `out` from the TorchScript file `ts` (sample inputs of `specs`), with `metadata` beside the program. */
export type ProgramWriter = (
  ts: string, out: string, specs: readonly { shape: number[]; dtype: string }[], metadata: string,
) => Promise<void>;

let writer: ProgramWriter | undefined;

/** Set by the package's entry point (lib/index.ts): the writer runs the resolved Python torch (lib/app/program-writer.ts). */
export function setProgramWriter(w: ProgramWriter): void { writer = w; }

export function programWriter(): ProgramWriter {
  if (!writer) {
    throw new TorchGraphError('ERR_INVALID_ARG', 'saving a .pt2 needs the Python torch writer, '
      + 'which the package entry point (torchgraph) sets up: import optimize from \'torchgraph\'');
  }
  return writer;
}
