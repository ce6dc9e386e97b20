// `torchgraph optimize MODEL --out FILE`: the fused model written as a file PyTorch loads
// (TorchScript, or a torch.export program for FILE.pt2), checked against the original on seeded
// inputs before it is reported: the optimized model in this process, and the file read back.
import * as fs from 'fs';
import { EXIT_CHECK_FAILED, EXIT_OK, UsageError } from './errors';
import { Progress, type CliIO } from './io';
import { modelFileAndInputs, orderedSpecs, programSignature, resolveModelArg, withoutDefaults } from './model';
import { loadModel } from '../../program/load-model';
import { optimize, type OptimizeReport } from '../../pipeline/optimize';
import { checkTarget } from '../../pipeline/save-model';
import { outPath } from './out-path';
import { maxAbsDiff } from '../../pipeline/compare';
import { DEFAULT_TOLERANCE } from '../../pipeline/stages';
import { flattenTensors, type Tensor } from '../../torchscript/tensor';
import { describeLowering } from '../../report/lowering';
import { installProgramWriter } from '../program-writer';
import type { LoweringSwitches } from '../../fusion/lowerings';

export interface OptimizeCliOptions {
  input?: string[];
  out?: string;
  force?: boolean;
  seed: number;
  tolerance?: number;
  /** Keep the rewrite without the faster-form check (optimize's keepFaster false). */
  keepRewrite?: boolean;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  /** Lowerings switched off (--no-LOWERING). */
  fuse?: LoweringSwitches;
}

const MiB = 1024 * 1024;

export async function optimizeCommand(modelArg: string, o: OptimizeCliOptions, io: CliIO): Promise<number> {
  const verbose = Boolean(o.verbose);
  installProgramWriter();
  const ref = resolveModelArg(modelArg);
  if (!o.out) {
    throw new UsageError('optimize: give the file to write with --out FILE (FILE.pt: TorchScript; FILE.pt2: a torch.export program)');
  }
  const out = checkTarget(outPath(o.out, '--out'), Boolean(o.force), `--out ${o.out}`, 'pass --force');
  const inputTexts = [...(o.input ?? [])];
  const program = ref.kind === 'file' ? await programSignature(ref.path, inputTexts.length === 0) : undefined;
  if (ref.kind === 'file' && inputTexts.length === 0 && program?.defaults) inputTexts.push(...program.defaults);
  if (ref.kind === 'file' && inputTexts.length === 0) {
    throw new UsageError(`optimize: ${ref.display} is a model file, so its inputs must be given: `
      + `pass --input SPEC for each forward() argument, in order (the model is planned for those shapes)${withoutDefaults(program)}`);
  }
  const { specs, names } = await orderedSpecs(inputTexts, ref.kind === 'file' ? ref.path : null);
  const quiet = Boolean(o.quiet) && !verbose;
  const progress = new Progress(io, verbose, quiet);
  const { file, inputs } = await modelFileAndInputs(ref, inputTexts, { specs, names }, o.seed, program?.names,
    { verbose, quiet, step: (l) => progress.step(l), done: () => progress.done(), stderr: io.stderr });
  const tolerance = o.tolerance ?? DEFAULT_TOLERANCE;
  try {
    progress.step('running the original');
    const original = await loadModel(file);
    let expected: Tensor[];
    try {
      expected = flattenTensors(await original.forward(...inputs.tensors));
    } finally {
      original.dispose();
    }
    progress.step('optimizing');
    const model = await loadModel(file);
    const optimized = await optimize(model, inputs.tensors.map((t) => ({ shape: t.shape, dtype: t.dtype })),
      { ...o.fuse, ...(o.keepRewrite ? { keepFaster: false } : {}) });
    try {
      progress.step('checking the optimized model');
      const got = flattenTensors(await optimized.forward(...inputs.tensors));
      const diff = maxAbsDiff(expected, got);
      got.forEach((t) => t.dispose());
      progress.step(`writing ${o.out}`);
      await optimized.save(out, { overwrite: Boolean(o.force) });
      progress.step('checking the saved file');
      const saved = await loadModel(out);
      let savedDiff: number | null;
      try {
        const back = flattenTensors(await saved.forward(...inputs.tensors));
        savedDiff = maxAbsDiff(expected, back);
        back.forEach((t) => t.dispose());
      } finally {
        saved.dispose();
      }
      progress.done();
      const passed = diff !== null && diff <= tolerance && savedDiff !== null && savedDiff <= tolerance;
      const result = {
        model: ref.display, out: o.out, bytes: fs.statSync(out).size, maxAbsDiff: diff, savedMaxAbsDiff: savedDiff, tolerance, passed,
        report: optimized.report,
      };
      if (o.json) io.stdout(`${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v), 2)}\n`);
      else io.stdout(renderOptimize(result));
      return passed ? EXIT_OK : EXIT_CHECK_FAILED;
    } finally {
      optimized.dispose();
      expected.forEach((t) => t.dispose());
    }
  } catch (e) {
    progress.abandon();
    throw e;
  } finally {
    progress.done();
    inputs.tensors.forEach((t) => t.dispose());
  }
}

interface OptimizeResult {
  model: string;
  out: string;
  bytes: number;
  maxAbsDiff: number | null;
  savedMaxAbsDiff: number | null;
  tolerance: number;
  passed: boolean;
  report: OptimizeReport;
}

const diffText = (d: number | null, tol: number) => (d === null
  ? 'not comparable (shapes or NaNs differ)'
  : `${d.toExponential(2)} ${d <= tol ? '<=' : '>'} ${tol}`);

export function renderOptimize(r: OptimizeResult): string {
  const rep = r.report;
  const lines = [`torchgraph optimize: ${r.model} -> ${r.out}`,
    `  planned for ${rep.plannedFor.map((s) => `${s.shape.join('x')} ${s.dtype}`).join(', ')}`];
  if (rep.form) lines.push(`  timed against the original before the weights moved: ${rep.form.reason}`);
  for (const l of describeLowering({ ...rep.lowering, packedLinears: rep.packedLinears, convolutions: rep.convolutions })) {
    if (l.lowered === null) continue;
    lines.push(`  ${l.kind}: ${l.lowered} of ${l.total} -> ${l.to}`);
    for (const u of l.unfused) lines.push(`    ${u.count} left as they are: ${u.reason}`);
  }
  lines.push(`  weights held: ${(rep.heldBytes / MiB).toFixed(1)} MiB in ${rep.weights.length} tensors `
    + `(the original: ${(rep.originalBytes / MiB).toFixed(1)} MiB); `
    + `${rep.packed.length} replaced by their prepacked form (redone when the file is optimized again)`);
  lines.push(`  other shapes: ${rep.otherShapes}`);
  lines.push(`  max abs diff vs the original: optimized model ${diffText(r.maxAbsDiff, r.tolerance)}; `
    + `saved file read back ${diffText(r.savedMaxAbsDiff, r.tolerance)}`);
  const py = r.out.endsWith('.pt2') ? `torch.export.load(${JSON.stringify(r.out)}).module()` : `torch.jit.load(${JSON.stringify(r.out)})`;
  lines.push(`  wrote ${r.out} (${(r.bytes / MiB).toFixed(1)} MiB): in Python, ${py} runs it`);
  lines.push(`Result: ${r.passed ? 'PASSED' : 'FAILED'}`);
  return `${lines.join('\n')}\n`;
}
