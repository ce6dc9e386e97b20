// .pt2 output of an optimized model: torch's own TorchScript-to-ExportedProgram converter, run by
// the resolved Python torch (scripts/to_program.py), which also checks the program against the
// TorchScript file within 1e-4 before it is written.
import { setProgramWriter, type ProgramWriter } from '../pipeline/save-model';
import { runExporter, torchInfo } from './models';

export const writeProgramWithPython: ProgramWriter = (ts, out, specs, metadata) =>
  runExporter(torchInfo(), [ts, out, JSON.stringify(specs), metadata], 'the optimized model as a torch.export program', undefined,
    'to_program.py');

/** OptimizedModel.save(FILE.pt2) writes through the Python torch (the package entry point and the CLI call this). */
export function installProgramWriter(): void { setProgramWriter(writeProgramWithPython); }
