// Benchmark of partition + analysis on decomposed ViT-B/16 (target: well under 10 ms).
//   npx tsx scripts/bench-analysis.ts [--iterations N] [--variant traced|traced_grad]
// Prepares the graph once (export, attention decomposed, shapes), then
// times analyzeGraph (facts, partition, FLOPs and group costs, both memory estimates, summary)
// and partitionGraph alone, and prints medians and spread. Pure TypeScript timing: libtorch is
// only used for the preparation.
import { analyzeGraph, partitionGraph } from '../lib/analysis';
import { ensureModel } from '../lib/app/models';
import { Module } from '../lib/torchscript/module';
import { propagateShapes, type InputSpec } from '../lib/torchscript/propagate-shapes';
import { exportView } from '../lib/transforms/module-views';
import { decomposeModelGraph } from '../lib/transforms/decompose-model';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const quantile = (xs: number[], q: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

async function main(): Promise<void> {
  const iterations = Number(arg('iterations', '200'));
  const variant = arg('variant', 'traced') as 'traced' | 'traced_grad';
  const fx = await ensureModel('vit_b_16');
  const m = await Module.load(fx.variants[variant]!);
  const specs: InputSpec[] = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype as InputSpec['dtype'] }));
  const { graph } = exportView(m, 'inlined');
  await decomposeModelGraph(m, graph, specs);
  await propagateShapes(graph, m, specs);
  m.dispose();

  for (let i = 0; i < 20; i++) analyzeGraph(graph); // warm up the JIT
  const stages: Record<string, number[]> = { facts: [], partition: [], flops: [], memory: [], total: [] };
  const partitionOnly: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const a = analyzeGraph(graph);
    for (const k of Object.keys(stages)) stages[k].push(a.ms[k as keyof typeof a.ms]);
    const t0 = performance.now();
    partitionGraph(graph);
    partitionOnly.push(performance.now() - t0);
  }
  const a = analyzeGraph(graph);
  const s = a.summary;
  console.log(`ViT-B/16 ${variant}, attention decomposed: ${s.nodes} nodes, ${s.computeNodes} compute, ` +
    `${s.fusionGroups} groups, ${s.attentionCores.explicit + s.attentionCores.opaque} attention cores, ${s.projections.qkvFused} Q/K/V triples fused`);
  console.log(`${iterations} iterations, node ${process.version}`);
  const row = (name: string, xs: number[]) => console.log(`  ${name.padEnd(22)} median ${quantile(xs, 0.5).toFixed(2)} ms   p10 ${quantile(xs, 0.1).toFixed(2)}   p90 ${quantile(xs, 0.9).toFixed(2)}`);
  row('analyzeGraph (total)', stages.total);
  row('  facts', stages.facts);
  row('  partition', stages.partition);
  row('  flops + group costs', stages.flops);
  row('  memory (both)', stages.memory);
  row('partitionGraph alone', partitionOnly);
}

main().catch((e) => { console.error(e); process.exit(1); });
