// `bench FILE --anchors` on a user's own file: the inputs torchgraph runs the case on and its
// original run's outputs on them, written as .npy files for scripts/anchors.py, which runs the
// same file in PyTorch (lib/app/anchors.ts) and compares each mode's outputs with these.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TorchGraphError } from '../core/errors';
import { loadModel } from '../program/load-model';
import { writeNpy, type NpyArray, type NpyDtype } from '../torchscript/npy';
import { flattenTensors, type Tensor } from '../torchscript/tensor';
import { caseInputs, type BenchCase } from '../pipeline/bench';
import type { AnchorTarget } from './anchors';

const NPY_DTYPES: readonly string[] = ['float32', 'float64', 'int64', 'int32', 'uint8', 'bool'] satisfies NpyDtype[];

function toNpy(t: Tensor, what: string): NpyArray {
  if (!NPY_DTYPES.includes(t.dtype)) {
    throw new TorchGraphError('ERR_INVALID_ARG',
      `bench --anchors: ${what} is ${t.dtype}, which cannot be handed to Python (${NPY_DTYPES.join(', ')})`);
  }
  return { shape: t.shape, dtype: t.dtype as NpyDtype, data: t.data() as NpyArray['data'] };
}

export interface FileAnchorFiles {
  target: Extract<AnchorTarget, { model: string }>;
  /** Removes the folder the .npy files are in. */
  remove(): void;
}

/** Writes case `c`'s inputs (seed as the bench's) and its file's outputs on them, run by libtorch here
 * as the bench's original run is, into a fresh temporary folder. */
export async function writeFileAnchorInputs(c: BenchCase, seed: number): Promise<FileAnchorFiles> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torchgraph-anchors-'));
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  const inputs = caseInputs(c, seed);
  let outputs: Tensor[] = [];
  try {
    const module = await loadModel(c.file);
    try {
      outputs = flattenTensors(await module.forward(...inputs));
    } finally {
      module.dispose();
    }
    const write = (ts: Tensor[], kind: string) => ts.map((t, i) => {
      const file = path.join(dir, `${kind}_${i}.npy`);
      writeNpy(file, toNpy(t, `${kind} ${i}`));
      return file;
    });
    return { target: { model: c.file, inputFiles: write(inputs, 'input'), refFiles: write(outputs, 'output') }, remove };
  } catch (e) {
    remove();
    throw e;
  } finally {
    [...inputs, ...outputs].forEach((t) => t.dispose());
  }
}
