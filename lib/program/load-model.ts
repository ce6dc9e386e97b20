// The one way the pipeline and the CLI load a model file: a torch.export program (.pt2, or any
// file that turns out to be one) through loadProgram, else TorchScript through Module.load.
// Both give a Module, so nothing above this knows which it was.
import { Module, type LoadOptions } from '../torchscript/module';
import { TorchGraphError } from '../core/errors';
import { isProgramPath } from './archive';
import { archiveKind } from '../torchscript/archive';
import { loadProgram } from './load';

/** Whether a file that is not named .pt2 is still a torch.export archive, from its zip listing
 * (read in JS: a FIFO or a device is never opened by libtorch's reader, which would block). */
function looksLikeProgram(path: string): boolean {
  return archiveKind(path) === 'torch-export';
}

export async function loadModel(path: string, options: LoadOptions = {}): Promise<Module> {
  if (isProgramPath(path)) return loadProgram(path, options);
  try {
    return await Module.load(path, options);
  } catch (e) {
    if (e instanceof TorchGraphError && e.code === 'ERR_LOAD' && looksLikeProgram(path)) return loadProgram(path, options);
    throw e;
  }
}
