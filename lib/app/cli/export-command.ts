// `torchgraph export FILE.py:FACTORY --input SPEC... [--script] [--out MODEL.pt]`: a user's
// PyTorch module to TorchScript, with the Python torch the resolver found.
import * as fs from 'fs';
import * as path from 'path';
import { exportUserModel } from '../models';
import { CliError, EXIT_OK, EXIT_USAGE, UsageError } from './errors';
import { parseInputSpec } from './input-spec';
import type { CliIO } from './io';

export interface ExportCliOptions { input?: string[]; script?: boolean; out?: string; quiet?: boolean }

export async function exportCommand(target: string, o: ExportCliOptions, io: CliIO): Promise<number> {
  const m = /^(.+\.py):([A-Za-z_][A-Za-z0-9_]*)$/.exec(target);
  if (!m) throw new UsageError(`export: ${target}: expected FILE.py:FACTORY (a function returning the nn.Module)`);
  if (!fs.existsSync(m[1])) throw new UsageError(`export: ${m[1]}: no such file`);
  const inputs = o.input ?? [];
  for (const s of inputs) {
    if (parseInputSpec(s).kind !== 'random') throw new UsageError(`export: --input ${s}: give a shape[:dtype] (the trace runs on random data)`);
  }
  if (!o.script && inputs.length === 0) throw new UsageError('export: tracing needs --input SPEC for each forward() argument (or pass --script)');
  const out = o.out ?? `${path.basename(m[1], '.py')}.pt`;
  try {
    await exportUserModel(path.resolve(m[1]) + ':' + m[2], path.resolve(out), inputs, Boolean(o.script));
  } catch (e) {
    const lines = (e as Error).message.split('\n').map((l) => l.trim()).filter(Boolean);
    const last = lines.reverse().find((l) => /^torchgraph export:|Error\b/.test(l)) ?? lines[0];
    throw new CliError(`export: ${last.replace(/^torchgraph export:\s*/, '')}`, EXIT_USAGE, { cause: e });
  }
  if (!o.quiet) io.stderr(`torchgraph: wrote ${out} (${o.script ? 'scripted' : 'traced'})\n`);
  return EXIT_OK;
}
