// Is an exported fixture in the model cache whole? A file cut short (a full disk, a copy that
// was interrupted, a crash while another tool wrote there) is found without a stored hash:
// a TorchScript archive keeps its zip central directory at the very end, and a .npy file's
// header says how many bytes follow it. Cheap (a stat and a few small reads per file), so it runs
// on every cache hit; lib/app/models.ts exports a damaged entry again.
import * as fs from 'fs';
import { archiveKind } from '../torchscript/archive';
import { NpyError, statNpy } from '../torchscript/npy';

export interface FixtureFiles {
  variants: Partial<Record<string, string>>;
  inputs: { file: string }[];
  outputs: { file: string }[];
}

/** What is wrong with each damaged file of a fixture (empty when it is whole). */
export function damagedFixtureFiles(fx: FixtureFiles): string[] {
  const bad: string[] = [];
  for (const file of Object.values(fx.variants)) {
    if (file === undefined) continue;
    if (!fs.existsSync(file)) bad.push(`${file}: missing`);
    else if (archiveKind(file) !== 'torchscript') bad.push(`${file}: not a whole TorchScript archive (truncated or damaged)`);
  }
  for (const t of [...fx.inputs, ...fx.outputs]) {
    try {
      statNpy(t.file);
    } catch (e) {
      bad.push(e instanceof NpyError ? e.message : `${t.file}: ${String(e)}`);
    }
  }
  return bad;
}
