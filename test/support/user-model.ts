// A user's model written as Python in a test, exported to TorchScript by `torchgraph export`
// (the resolved Python torch), in a temporary folder the suite removes when it ends.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runCli } from './cli';

export interface UserModel {
  /** Exports FACTORY of the module to `<name>.pt` (traced, or scripted) for inputs of `input` (e.g. "2x3x32x32"); returns the file. */
  exportAs(name: string, factory: string, input: string, how?: 'traced' | 'scripted'): string;
}

/** Registers before/after hooks in the calling describe(): `source` is written to a fresh folder. */
export function userModel(source: string, prefix: string): UserModel {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tg-${prefix}-`));
  const py = path.join(tmp, `${prefix.replace(/\W/g, '_')}.py`);
  before(() => fs.writeFileSync(py, source));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  return {
    exportAs(name, factory, input, how = 'traced') {
      const file = path.join(tmp, `${name}.pt`);
      const r = runCli(['export', `${py}:${factory}`, '--input', input, '--out', file, ...(how === 'scripted' ? ['--script'] : [])]);
      assert.equal(r.code, 0, r.err);
      return file;
    },
  };
}
