// Graph-side time of ViT-B/16 as a torch.export program (.pt2) against its traced TorchScript
// twin, medians of repeated runs in one process: read (.pt2: archive -> model.json -> Graph;
// TorchScript: nothing, the graph is in the loaded module), views (standard and inlined views
// exported from the module), shapes (meta run of the inlined view), decompose (attention decomposed, modules inlined, shapes again) and partition
// (canonicalise + partition for lowering). Weights load once, outside the loop.
// `npx tsx scripts/bench-program.ts [repetitions]`
import { Module } from '../lib/torchscript/module';
import { ensureModel } from '../lib/app/models';
import { ensureProgram } from '../lib/app/programs';
import { loadProgram, readProgram } from '../lib/program';
import { exportView } from '../lib/transforms/module-views';
import { propagateShapes } from '../lib/torchscript/propagate-shapes';
import { decomposeStandardView } from '../lib/pipeline/prepare';
import { partitionForLowering } from '../lib/fusion/lower-groups';
import { canonicalize } from '../lib/transforms/canonicalize';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const spec = [{ shape: [1, 3, 224, 224], dtype: 'float32' as const }];

async function measure(m: Module, read: () => Promise<unknown>, reps: number): Promise<Record<string, number[]>> {
  const t: Record<string, number[]> = { read: [], views: [], shapes: [], decompose: [], partition: [], total: [] };
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await read();
    const ta = performance.now();
    const std = exportView(m, 'standard');
    const inlined = exportView(m, 'inlined').graph;
    const t1 = performance.now();
    const sr = await propagateShapes(inlined, m, spec);
    if (i === 0) console.log(`${inlined.allNodes().length} inlined nodes, shapes ${sr.mode}, without meta: ${JSON.stringify(sr.opsWithoutMeta)}`);
    const t2 = performance.now();
    const { decomposed, decomposition } = await decomposeStandardView(m, std.graph, spec);
    if (decomposition.report.decomposed.length !== 12) throw new Error(`decomposed ${decomposition.report.decomposed.length}`);
    const t3 = performance.now();
    canonicalize(decomposed);
    const groups = partitionForLowering(decomposed);
    if (groups.filter((g) => g.kind === 'attention_core').length !== 12) throw new Error('cores');
    const t4 = performance.now();
    t.read.push(ta - t0); t.views.push(t1 - ta); t.shapes.push(t2 - t1); t.decompose.push(t3 - t2); t.partition.push(t4 - t3); t.total.push(t4 - t0);
  }
  return t;
}

async function main() {
  const reps = Number(process.argv[2] ?? 9);
  const pt2 = (await ensureProgram('vit_b_16')).program;
  const ts = (await ensureModel('vit_b_16')).variants.traced!;
  const mp = await loadProgram(pt2);
  const mt = await Module.load(ts);
  const rows = {
    'pt2 (torch.export)': await measure(mp, () => readProgram(pt2), reps),
    'TorchScript (traced)': await measure(mt, async () => undefined, reps),
  };
  console.log(`ViT-B/16 graph-side time, medians of ${reps} (ms)`);
  console.log(`${''.padEnd(22)}${['read', 'views', 'shapes', 'decompose', 'partition', 'total'].map((k) => k.padStart(11)).join('')}`);
  for (const [name, t] of Object.entries(rows)) {
    console.log(`${name.padEnd(22)}${['read', 'views', 'shapes', 'decompose', 'partition', 'total'].map((k) => median(t[k]).toFixed(1).padStart(11)).join('')}`);
  }
  mp.dispose(); mt.dispose();
}
main().catch((e) => { console.error(e); process.exit(1); });
