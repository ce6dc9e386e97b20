// The one way the pipeline and the CLI load a model file: a torch.export program (.pt2, or any
// file that turns out to be one) through loadProgram, else TorchScript through Module.load.
// Both give a Module, so nothing above this knows which it was.
import { Module, type LoadOptions } from '../torchscript/module';
import { TorchGraphError } from '../core/errors';
import { isProgramPath, readProgramArchive } from './archive';
import { loadProgram } from './load';

/** Whether a file that is not named .pt2 is still a torch.export archive (has models/*.json). */
async function looksLikeProgram(path: string): Promise<boolean> {
  try {
    await readProgramArchive(path);
    return true;
  } catch (e) {
    // A readable archive that is a program of an unsupported kind still counts: its error says why.
    return e instanceof TorchGraphError && /AOTInductor|schema version|archive_format/.test(e.message);
  }
}

export async function loadModel(path: string, options: LoadOptions = {}): Promise<Module> {
  if (isProgramPath(path)) return loadProgram(path, options);
  try {
    return await Module.load(path, options);
  } catch (e) {
    if (e instanceof TorchGraphError && e.code === 'ERR_LOAD' && (await looksLikeProgram(path))) return loadProgram(path, options);
    throw e;
  }
}
