// `npm run profile -- MODEL [--input SPEC ...] [--repeat N]`: where the fused graph's time goes.
// Builds the three graphs as validate does, runs the fused one N times (after two warm-ups)
// with libtorch's per-operator timing on, and prints the top-level ops by median total time
// with their share of the run, calls and time per call. MODEL is a built-in name or a file.
import { parseArgs } from 'util';
import { loadModel } from '../lib/program/load-model';
import { prepareGraphs } from '../lib/pipeline/prepare';
import { median } from '../lib/pipeline/compare';
import { randomTensor } from '../lib/torchscript/random';
import { nativeOf } from '../lib/torchscript/tensor';
import { ensureModel, MODEL_NAMES, type ModelName } from '../lib/app/models';
import { builtinFile } from '../lib/app/cli/model';
import { parseInputSpec, readSpecFile } from '../lib/app/cli/input-spec';
import { Tensor } from '../lib/torchscript/tensor';
import type { NativeRunResult, TypedArray } from '../lib/torchscript/binding';

const USAGE = 'usage: npm run profile -- MODEL [--input SPEC ...] [--repeat N]';

const OPTIONS = { input: { type: 'string', short: 'i', multiple: true }, repeat: { type: 'string' } } as const;

function parsed(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${USAGE}`, { cause: e });
  }
}

/** The arguments, by node's own parser (strict: an unknown option or a missing value is an error). */
function parseArguments(argv: string[]): { model: string; specs: string[]; repeat: number } {
  const { values, positionals } = parsed(argv);
  if (positionals.length !== 1) throw new Error(positionals.length ? `one MODEL, got ${positionals.join(' ')}\n${USAGE}` : USAGE);
  const repeat = values.repeat === undefined ? 7 : Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat ${values.repeat}: give a whole number of runs, 1 or more`);
  return { model: positionals[0], specs: values.input ?? [], repeat };
}

async function main(): Promise<void> {
  const { model, specs, repeat } = parseArguments(process.argv.slice(2));
  const fx = MODEL_NAMES.includes(model) ? await ensureModel(model as ModelName) : undefined;
  const file = fx ? builtinFile(fx) : model;
  if (!fx && !specs.length) {
    throw new Error(`profile: ${model} is a model file, so its inputs must be given: `
      + 'pass --input SPEC for each forward() argument (e.g. --input 1x3x224x224)');
  }
  const inputs: Tensor[] = specs.length
    ? specs.map(parseInputSpec).map((p, i) => {
        if (p.kind !== 'npy') return randomTensor(p.shape, p.dtype, i);
        const a = readSpecFile(p);
        return Tensor.from(a.data as TypedArray, a.shape, a.dtype);
      })
    : fx!.inputs.map((s, i) => randomTensor(s.shape, s.dtype, i));
  const m = await loadModel(file, { device: 'cpu' });
  const p = await prepareGraphs(m, inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })));
  const g = m._native.buildGraph(p.fused.toData());
  const args2 = m._resolveInputs(inputs.map(nativeOf));
  for (let i = 0; i < 2; i++) await g.run(args2);
  const runs: NativeRunResult[] = [];
  for (let i = 0; i < repeat; i++) runs.push(await g.run(args2, { profile: true }));
  const total = median(runs.map((r) => r.ms));
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.opTimes ?? {})))];
  const rows = names.map((name) => ({
    name, ms: median(runs.map((r) => r.opTimes?.[name]?.ms ?? 0)), calls: runs[0].opTimes?.[name]?.calls ?? 0,
  })).sort((a, b) => b.ms - a.ms);
  console.log(`${model}: fused graph ${total.toFixed(1)} ms (median of ${repeat}), top-level ops:`);
  for (const r of rows.slice(0, 15)) {
    console.log(`  ${r.name.padEnd(40)} ${r.ms.toFixed(2).padStart(9)} ms ${(100 * r.ms / total).toFixed(1).padStart(5)}%  ${String(r.calls).padStart(5)} calls  ${(r.ms / Math.max(1, r.calls)).toFixed(3)} ms/call`);
  }
  g.dispose();
  inputs.forEach((t) => t.dispose());
  m.dispose();
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exitCode = 2; });
