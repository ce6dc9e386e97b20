// `torchgraph validate`: arguments to a ValidationReport to the terminal, JSON and HTML.
import * as fs from 'fs';
import * as path from 'path';
import { reportToJson } from '../../report/json';
import { renderTerminal } from '../../report/terminal';
import { writeHtmlReport } from '../../report/html';
import type { Environment } from '../../report/types';
import { EXIT_CHECK_FAILED, EXIT_OK, UsageError } from './errors';
import { packageVersion, Progress, type CliIO } from './io';
import { builtinFile, builtinFixture, exampleInputs, makeInputs, orderedSpecs, resolveModelArg, type PreparedInputs } from './model';
import { createPipeline } from '../../pipeline/pipeline';
import { DEFAULT_TOLERANCE, runValidation } from '../../pipeline/stages';

export interface ValidateCliOptions {
  input?: string[];
  seed: number;
  device: string;
  json?: boolean;
  report?: string;
  tolerance?: number;
  verbose?: boolean;
  quiet?: boolean;
}

export async function validateCommand(modelArg: string, o: ValidateCliOptions, io: CliIO): Promise<number> {
  const verbose = Boolean(o.verbose);
  const inputTexts = o.input ?? [];
  // Everything that can be checked cheaply is checked before anything slow runs.
  const ref = resolveModelArg(modelArg);
  if (ref.kind === 'file' && inputTexts.length === 0) {
    throw new UsageError(`validate: ${ref.display} is a model file, so its inputs must be given: pass --input SPEC for each forward() argument, in order (e.g. --input 1x3x224x224; arguments after the last one given take their defaults)`);
  }
  // Named inputs of a file are ordered by its schema (a built-in model's by its example inputs, below).
  const { specs, names } = await orderedSpecs(inputTexts, ref.kind === 'file' ? ref.path : null);
  if (o.report !== undefined) checkReportPath(o.report);
  const pipeline = createPipeline();

  const quiet = Boolean(o.quiet) && !verbose;
  const progress = new Progress(io, verbose, quiet);
  let file: string;
  let inputs: PreparedInputs;
  if (ref.kind === 'builtin') {
    progress.step(`preparing built-in model ${ref.name}`);
    const fx = await builtinFixture(ref.name, { verbose, stderr: (s) => { progress.done(); if (!quiet) io.stderr(s); } });
    file = builtinFile(fx);
    const ordered = names ? await orderedSpecs(inputTexts, file) : { specs, names };
    inputs = specs.length ? makeInputs(ordered.specs, o.seed, ordered.names ?? fx.inputs.map((t) => t.name)) : exampleInputs(fx);
  } else {
    file = ref.path;
    inputs = makeInputs(specs, o.seed, names ?? []);
  }

  const env: Partial<Environment> = {
    device: o.device,
    torchgraphVersion: packageVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    env.torchVersion = (require('../../torchscript/runtime-info') as typeof import('../../torchscript/runtime-info')).runtimeInfo().torchVersion;
  } catch { /* the addon failed to load: loading the model reports it */ }

  let report;
  try {
    report = await runValidation(pipeline, {
      model: ref.display, file, device: o.device, seed: o.seed, tolerance: o.tolerance ?? DEFAULT_TOLERANCE,
      inputs: inputs.tensors, inputInfo: inputs.info, environment: env, log: (l) => progress.step(l),
    });
  } catch (e) {
    progress.abandon();
    throw e;
  } finally {
    progress.done();
    for (const t of inputs.tensors) t.dispose();
  }

  if (o.json) io.stdout(reportToJson(report));
  else io.stdout(renderTerminal(report, { color: io.color }));
  if (o.report !== undefined) {
    writeHtmlReport(o.report, report);
    if (!quiet) io.stderr(`torchgraph: report written to ${o.report}\n`);
  }
  return report.passed ? EXIT_OK : EXIT_CHECK_FAILED;
}

/** The report's folder must exist and the name must not be a folder. */
function checkReportPath(file: string): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--report ${file}: folder ${dir} does not exist`);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new UsageError(`--report ${file}: is a folder; give a file name such as report.html`);
}
