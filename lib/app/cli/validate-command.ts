// `torchgraph validate`: arguments to a ValidationReport to the terminal, JSON and HTML.
import * as fs from 'fs';
import { reportToJson } from '../../report/json';
import { renderTerminal } from '../../report/terminal';
import { isHtmlReport, writeHtmlReport } from '../../report/html';
import { outPath } from './out-path';
import { checkReportTarget } from '../../report/write';
import type { Environment } from '../../report/types';
import { EXIT_CHECK_FAILED, EXIT_OK, UsageError } from './errors';
import { Progress, type CliIO } from './io';
import { packageVersion } from '../../torchscript/package-root';
import {
  ModelOnce, modelFileAndInputs, orderedSpecs, positionalNames, programSignature, resolveModelArg, withoutDefaults, type ModelRef,
} from './model';
import { createPipeline } from '../../pipeline/pipeline';
import { DEFAULT_TOLERANCE, diffCheck, runValidation, type ValidationPipeline } from '../../pipeline/stages';
import { loadModel } from '../../program/load-model';
import { maxAbsDiff } from '../../pipeline/compare';
import { flattenTensors, type Tensor } from '../../torchscript/tensor';
import type { ReportCheck } from '../../report/types';
import type { LoweringSwitches } from '../../fusion/lowerings';

export interface ValidateCliOptions {
  input?: string[];
  seed: number;
  device: string;
  json?: boolean;
  report?: string;
  tolerance?: number;
  verbose?: boolean;
  quiet?: boolean;
  /** The model the file was made from (an optimized file's original): its outputs on the same inputs are the reference for one
   * more check. */
  reference?: string;
  /** Lowerings switched off (--no-LOWERING). */
  fuse?: LoweringSwitches;
}

export async function validateCommand(modelArg: string, o: ValidateCliOptions, io: CliIO): Promise<number> {
  const verbose = Boolean(o.verbose);
  const inputTexts = [...(o.input ?? [])];
  // Everything that can be checked cheaply is checked before anything slow runs.
  const ref = resolveModelArg(modelArg);
  // A torch.export program names its inputs and records the example's shapes: float inputs of
  // fixed shape can default to random tensors of those.
  const program = ref.kind === 'file' ? await programSignature(ref.path, inputTexts.length === 0) : undefined;
  if (ref.kind === 'file' && inputTexts.length === 0 && program?.defaults) inputTexts.push(...program.defaults);
  if (ref.kind === 'file' && inputTexts.length === 0) {
    throw new UsageError(`validate: ${ref.display} is a model file, so its inputs must be given: `
      + 'pass --input SPEC for each forward() argument, in order '
      + `(e.g. --input 1x3x224x224; arguments after the last one given take their defaults)${withoutDefaults(program)}`);
  }
  if (o.report !== undefined) {
    const target = checkReportTarget(outPath(o.report, '--report'), `--report ${JSON.stringify(o.report)}`);
    // A report replaces the last one; any other file (the model itself, say) stays.
    if (fs.existsSync(target) && !isHtmlReport(target)) {
      throw new UsageError(`--report ${JSON.stringify(o.report)}: the file exists and is not a torchgraph report: `
        + 'it is never replaced (remove it, or name another file)');
    }
  }
  const reference = o.reference === undefined ? undefined : resolveModelArg(o.reference);
  if (reference && reference.kind !== 'file') {
    throw new UsageError(`--reference ${o.reference}: give the model file the validated one was made from`);
  }

  const quiet = Boolean(o.quiet) && !verbose;
  const progress = new Progress(io, verbose, quiet);
  // A model file is loaded once: its schema names the inputs, and the validation runs that module.
  const model = ref.kind === 'file' ? new ModelOnce(ref.path, { device: o.device }, () => progress.step(`loading ${ref.display}`)) : null;
  try {
    return await validateLoaded(ref, model, inputTexts, program?.names, progress, o, io);
  } catch (e) {
    progress.abandon();
    throw e;
  } finally {
    await model?.dispose();
  }
}

async function validateLoaded(
  ref: ModelRef, model: ModelOnce | null, inputTexts: string[], programNames: string[] | undefined,
  progress: Progress, o: ValidateCliOptions, io: CliIO,
): Promise<number> {
  const verbose = Boolean(o.verbose);
  const quiet = Boolean(o.quiet) && !verbose;
  // Named inputs of a file are ordered by its schema (a built-in model's by its example inputs, below).
  const { specs, names } = await orderedSpecs(inputTexts, model);
  // Inputs given by position are labelled with the file's argument names (input_ids, ...).
  const fileNames = programNames ?? (model && !names ? await positionalNames(model, specs.length) : undefined);
  const { file, inputs } = await modelFileAndInputs(ref, inputTexts, { specs, names }, o.seed, fileNames,
    { verbose, quiet, step: (l) => progress.step(l), done: () => progress.done(), stderr: io.stderr });
  const preloaded = Boolean(model?.started);
  const pipeline = runningLoaded(createPipeline(o.fuse), model);
  const reference = o.reference === undefined ? undefined : resolveModelArg(o.reference);

  const env: Partial<Environment> = {
    device: o.device,
    torchgraphVersion: packageVersion(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runtimeInfo } = require('../../torchscript/runtime-info') as typeof import('../../torchscript/runtime-info');
    env.torchVersion = runtimeInfo().torchVersion;
  } catch { /* the addon failed to load: loading the model reports it */ }

  let report;
  try {
    report = await runValidation(pipeline, {
      model: ref.display, file, device: o.device, seed: o.seed, tolerance: o.tolerance ?? DEFAULT_TOLERANCE,
      inputs: inputs.tensors, inputInfo: inputs.info, environment: env,
      // The file was loaded above already (its progress line said so): not a second "loading" line.
      log: (l) => { if (!(preloaded && l.startsWith('loading '))) progress.step(l); },
    });
    const timings = report.environment?.timings;
    if (preloaded && model && timings) {
      // The load ran before the validation's clock started: its time is the report's load time.
      timings.load = round2(timings.load + model.loadMs);
      timings.total = round2(timings.total + model.loadMs);
    }
    if (reference?.kind === 'file') {
      progress.step(`comparing with ${reference.display}`);
      const check = await referenceCheck(file, reference.path, inputs.tensors, o.tolerance ?? DEFAULT_TOLERANCE);
      report.checks = [...(report.checks ?? []), check];
      report.passed = report.passed && check.passed;
    }
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
    await writeHtmlReport(o.report, report);
    if (!quiet) io.stderr(`torchgraph: report written to ${o.report}\n`);
  }
  return report.passed ? EXIT_OK : EXIT_CHECK_FAILED;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** The pipeline, loading `model`'s file as the module already loaded (if it was), which the run then frees. */
function runningLoaded(pipeline: ValidationPipeline, model: ModelOnce | null): ValidationPipeline {
  return {
    ...pipeline,
    load: (file, lo) => {
      const loaded = model && file === model.file ? model.take() : undefined;
      return loaded ?? (pipeline.load ? pipeline.load(file, lo) : loadModel(file, lo));
    },
  };
}

/** The file's outputs against the reference model's (the one it was made from) on the same inputs. */
async function referenceCheck(file: string, reference: string, inputs: Tensor[], tolerance: number): Promise<ReportCheck> {
  const outputsOf = async (path: string) => {
    const m = await loadModel(path);
    try {
      return flattenTensors(await m.forward(...inputs));
    } finally {
      m.dispose();
    }
  };
  const a = await outputsOf(file);
  const b = await outputsOf(reference);
  const diff = maxAbsDiff(a, b);
  [...a, ...b].forEach((t) => t.dispose());
  return diffCheck('matches-reference', `the model vs ${reference}`, diff, tolerance);
}
