// `torchgraph export FILE.py:FACTORY --input [NAME=]SPEC... [--output NAME] [--script | --pt2] [--out MODEL.pt]`:
// a user's PyTorch module to TorchScript (or, with --pt2 or --out FILE.pt2, a torch.export program),
// with the Python torch the resolver found. The specs go
// to scripts/export_model.py written out in full (canonicalSpec), which draws the same inputs
// validate does; a forward returning a dict, ModelOutput or tuple is traced through a wrapper
// that keeps one output.
import * as fs from 'fs';
import * as path from 'path';
import { exportUserModel } from '../models';
import { CliError, EXIT_OK, EXIT_USAGE, UsageError } from './errors';
import { canonicalSpec, parseInputSpec } from './input-spec';
import { NAMED_SPEC } from './model';
import { outPath } from './out-path';
import { checkTarget } from '../../pipeline/save-model';
import type { CliIO } from './io';

export interface ExportCliOptions {
  input?: string[]; output?: string; script?: boolean; pt2?: boolean; out?: string; force?: boolean; quiet?: boolean;
}

export async function exportCommand(target: string, o: ExportCliOptions, io: CliIO): Promise<number> {
  const m = /^(.+\.py):([A-Za-z_][A-Za-z0-9_]*)$/.exec(target);
  if (!m) throw new UsageError(`export: ${target}: expected FILE.py:FACTORY (a function returning the nn.Module)`);
  if (!fs.existsSync(m[1])) throw new UsageError(`export: ${m[1]}: no such file`);
  const texts = o.input ?? [];
  const split = texts.map((t) => NAMED_SPEC.exec(t.trim()));
  if (split.some((n) => n) && split.some((n) => !n)) throw new UsageError('export: --input: give every input by name (name=SPEC) or none');
  const names = split.map((n) => n?.[1]);
  const dup = names.find((n, i) => n !== undefined && names.indexOf(n) !== i);
  if (dup) throw new UsageError(`export: --input ${dup}=...: given twice`);
  const inputs = texts.map((t, i) => {
    const spec = parseInputSpec(split[i] ? split[i]![2] : t);
    if (spec.kind !== 'random') {
      throw new UsageError(`export: --input ${t}: give a shape[:dtype][:fill] (the trace runs on generated data)`);
    }
    return (names[i] ? `${names[i]}=` : '') + canonicalSpec(spec);
  });
  // A torch.export program: asked for by --pt2, or by the name --out gives.
  const program = Boolean(o.pt2) || (o.out !== undefined && /\.pt2$/i.test(o.out));
  if (program && o.script) {
    throw new UsageError('export: --pt2 captures a run with torch.export: '
      + 'drop --script (and give --input SPEC for each forward() argument)');
  }
  if (o.pt2 && o.out !== undefined && !/\.pt2$/i.test(o.out)) throw new UsageError(`export: --pt2 writes a torch.export program: name it FILE.pt2 (--out ${o.out})`);
  if (program && inputs.length === 0) throw new UsageError('export: torch.export needs --input SPEC for each forward() argument');
  if (!o.script && inputs.length === 0) {
    throw new UsageError('export: tracing needs --input SPEC for each forward() argument (or pass --script)');
  }
  if (o.output !== undefined && !/^([A-Za-z_][A-Za-z0-9_.]*|\d+)$/.test(o.output)) throw new UsageError(`export: --output ${JSON.stringify(o.output)}: give an output's name or index`);
  if (o.output !== undefined && o.script) throw new UsageError('export: --output picks from a traced run: drop --script');
  const out = o.out ?? `${path.basename(m[1], '.py')}.${program ? 'pt2' : 'pt'}`;
  // Before Python runs: an existing file is replaced only with --force (as optimize's --out).
  try {
    checkTarget(outPath(out, '--out'), Boolean(o.force), `export: --out ${out}`, 'pass --force');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  try {
    // The exporter's own notes (which output was kept) are the user's to read; its other
    // chatter (library warnings) is not.
    const log = (line: string) => { if (!o.quiet && /^torchgraph: (?!wrote )/.test(line)) io.stderr(`${line}\n`); };
    await exportUserModel(path.resolve(m[1]) + ':' + m[2], path.resolve(out), inputs, Boolean(o.script), log, o.output, program);
  } catch (e) {
    const lines = (e as Error).message.split('\n').map((l) => l.trim()).filter(Boolean);
    const last = lines.reverse().find((l) => /^torchgraph export:|Error\b/.test(l)) ?? lines[0];
    throw new CliError(`export: ${last.replace(/^torchgraph export:\s*/, '')}`, EXIT_USAGE, { cause: e });
  }
  if (!o.quiet) io.stderr(`torchgraph: wrote ${out} (${o.script ? 'scripted' : program ? 'a torch.export program' : 'traced'})\n`);
  return EXIT_OK;
}
