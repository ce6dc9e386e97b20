// `npm run bench`: the project's benchmark. The standard suite (mha_demo, ViT-B/16 batch 1 and 8,
// attention at L=2048), or the models named on the command line, with the project's targets
// judged: a miss is exit 1 (`torchgraph bench`, for a user's model, has none). `--json` prints
// the report as JSON.
// `--anchors`: PyTorch eager and torch.compile (inductor, default and with freezing) on the same
// weights, timed in the same repetitions, with this machine's GEMM peak (lib/app/anchors.ts).
// `--no-fold-batch-norm`: leave eval batch norms after convolutions unfolded (to measure folding).
// `--ablate NAME[,NAME]`: also time the fused graph with those lowerings off, in the same
// repetitions (foldBatchNorms, pointwiseConvolutions, packedLinears, concatenateProjections).
// `--corpus`: one row per real-model corpus class (lib/app/corpus.ts), traced, on its own inputs
// (token ids in the vocabulary, padding masks that pad), with the cores lowered to SDPA.
// `--corpus --set bench`: the corpus' bench set instead (BERT-base at L=128 and 512, GPT-2 small at
// L=512, eager attention; ResNet-18 and ResNet-50; exported on first use, some minutes). With
// `--anchors`, corpus rows are anchored too: scripts/anchors.py rebuilds each transformers class,
// loads the traced file's weights and runs on the fixture's own inputs; its eager output's max abs
// diff from the fixture's (at most 1e-4, or it refuses) is printed on stderr with the compile seconds.
//   npx tsx scripts/bench.ts --corpus --set bench --anchors [bert_base_eager_512 resnet50 ...]
// `--optimized-memory [NAME...]`: optimize()'s memory bar, each case in two fresh processes (peak
// RSS of load + optimize + run against load + run of the original): ViT-B/16 b1, BERT-base L=128,
// GPT-2 small L=512, ResNet-50 b1.
// `--with-suite` (with --corpus): the standard suite's rows first, in the same run and table.
// onnxruntime-node (scripts/bench-ort.ts): with `--anchors` on every anchored case; `--ort` alone
// (no PyTorch anchors) on issue #28's four models (or on the cases named), then both peak RSS.
// `--gemm`: the packed linears' GEMMs (ours, oneDNN's, MKL's) on transformer shapes, one op each
// in a built graph, and the one this machine picks (scripts/bench-gemm.ts).
import { loadCorpus } from '../lib/app/corpus';
import { runBench, STANDARD_SUITE, type SuiteCase } from '../lib/app/bench';
import { formatMemoryRow, measureOptimizedMemory, type MemoryCase } from '../lib/app/optimized-memory';
import { ensureModel } from '../lib/app/models';
import { builtinFile } from '../lib/app/cli/model';
import { ABLATABLE_LOWERINGS, type AblatableLowering } from '../lib/pipeline/bench';
import { ortSet, withOrtNode } from './bench-ort';
import { benchGemm } from './bench-gemm';

/** The traced models of corpus set `set`; `names`, when given, picks some by fixture name. */
async function corpusCases(names: string[], set: 'default' | 'bench'): Promise<SuiteCase[]> {
  const corpus = await loadCorpus({ set, log: (s: string) => process.stderr.write(`${s}\n`) });
  for (const s of corpus.skips) process.stderr.write(`bench: corpus skips ${s.id ?? s.library}: ${s.reason}\n`);
  const unknown = names.filter((n) => !corpus.byId[n]);
  if (unknown.length) throw new Error(`bench --corpus: no ${unknown.join(', ')} in the ${set} set (it has ${Object.keys(corpus.byId).join(', ')})`);
  return corpus.fixtures.filter((fx) => fx.variants.traced && (!names.length || names.includes(fx.name))).map((fx) => ({
    name: fx.name, model: fx.variants.traced!, inputs: fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })),
    files: fx.inputs.map((i) => i.file), warmup: 1, repetitions: fx.size === 'standard' ? 3 : 5,
    // The anchors rebuild transformers classes (corpus.py's builders); timm and torchvision ones have none.
    ...(fx.library === 'transformers' ? { anchor: { manifest: fx.manifestPath, pythonPath: corpus.pythonPath } } : {}),
  }));
}

/** The memory bar of optimize(): ViT-B/16 b1 and the corpus bench set's BERT-base L=128, GPT-2 small L=512, ResNet-50 b1 (or those named). */
async function optimizedMemory(names: string[]): Promise<number> {
  const vit = await ensureModel('vit_b_16', { runVariantOnly: true });
  const bench = await corpusCases([], 'bench');
  const cases: MemoryCase[] = [{ name: 'vit_b_16 batch 1', model: builtinFile(vit), inputs: [{ shape: [1, 3, 224, 224], dtype: 'float32' }] },
    ...bench.filter((c) => ['bert_base_eager_128', 'gpt2_small_eager_512', 'resnet50'].includes(c.name)).map((c) => ({ name: c.name, model: c.model, inputs: c.inputs }))];
  const picked = cases.filter((c) => !names.length || names.some((n) => c.name.startsWith(n)));
  process.stdout.write('peak RSS (VmHWM) of a fresh process: load + optimize (the original disposed) + 4 runs, against load + 4 runs of the original; medians of 3 interleaved process pairs\n');
  const rows = await measureOptimizedMemory(picked, (r) => process.stdout.write(`${formatMemoryRow(r)}\n`));
  const misses = rows.filter((r) => r.ratio > 1.05);
  process.stdout.write(misses.length ? `MISS: ${misses.map((r) => r.name).join(', ')} over 1.05x\n` : 'ok: every case within 1.05x\n');
  return misses.length ? 1 : 0;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--optimized-memory')) return optimizedMemory(args.filter((a) => !a.startsWith('--')));
  if (args.includes('--gemm')) {
    await benchGemm();
    return 0;
  }
  const json = args.includes('--json');
  const ablateAt = args.indexOf('--ablate');
  const ablate = ablateAt >= 0 ? args.splice(ablateAt, 2)[1]?.split(',') ?? [] : [];
  for (const a of ablate) if (!(ABLATABLE_LOWERINGS as readonly string[]).includes(a)) throw new Error(`--ablate ${a}: expected one of ${ABLATABLE_LOWERINGS.join(', ')}`);
  const setAt = args.indexOf('--set');
  const set = setAt >= 0 ? args[setAt + 1] : 'default';
  if (set !== 'default' && set !== 'bench') throw new Error(`bench: --set takes default or bench, not ${set ?? 'nothing'}`);
  const names = args.filter((a, i) => !a.startsWith('--') && !(setAt >= 0 && i === setAt + 1));
  const corpus = args.includes('--corpus') ? await corpusCases(names, set) : undefined;
  // --with-suite: the standard suite first, then the corpus rows, in one run (one table).
  let cases = corpus && args.includes('--with-suite') ? [...STANDARD_SUITE, ...corpus] : corpus;
  const ortOnly = args.includes('--ort') && !args.includes('--anchors');
  if (ortOnly && !cases) {
    // #28's four cases (10 repetitions each), or those named (by case or model name: `--ort resnet18`).
    const four = ortSet(await corpusCases([], 'bench'));
    cases = names.length ? four.filter((c) => names.includes(c.name) || names.includes(c.model)) : four;
    if (!cases.length) throw new Error(`bench --ort: no ${names.join(', ')} among ${four.map((c) => c.name).join(', ')}`);
  }
  const ort = args.includes('--ort') || args.includes('--anchors') ? withOrtNode(cases ?? STANDARD_SUITE, (s) => process.stderr.write(`${s}\n`)) : undefined;
  if (ort && (cases || !names.length)) cases = ort.cases;
  const r = await runBench({
    models: cases ? [] : names, inputs: [], device: process.env.TORCHGRAPH_DEVICE ?? 'cpu', seed: 0, cases, project: true,
    anchors: args.includes('--anchors'),
    fuse: { foldBatchNorms: !args.includes('--no-fold-batch-norm') }, ablate: ablate as AblatableLowering[],
    json, verbose: false, stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s),
  });
  const ortTable = json ? '' : await ort?.table(r);
  if (ortTable) process.stdout.write(`\n${ortTable}\n`);
  return r.passed ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (e) => { console.error(e instanceof Error ? e.message : e); process.exitCode = 2; });
