// Graph-side timings on ViT-B/16 (traced), medians of repeated runs in one process:
// export + import into TS, shape propagation, build back, attention decomposition,
// partition + analysis. `npx tsx scripts/bench-graph.ts`
import { Module } from '../lib/torchscript/module';
import { ensureModel } from '../lib/app/models';
import { exportView } from '../lib/transforms/module-views';
import { propagateShapes } from '../lib/torchscript/propagate-shapes';
import { decomposeAttention, inlineAttentionModuleCalls } from '../lib/transforms/decompose-attention';
import { analyzeGraph } from '../lib/analysis';
import { nativeSync } from '../lib/core/errors';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function main() {
  const fx = await ensureModel('vit_b_16');
  const m = await Module.load(fx.variants.traced!);
  const spec = [{ shape: [1, 3, 224, 224], dtype: 'float32' as const }];
  const t: Record<string, number[]> = { exportImport: [], shapes: [], build: [], total: [], decompose: [], analysis: [] };
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    const { graph } = exportView(m, 'inlined');
    const t1 = performance.now();
    await propagateShapes(graph, m, spec);
    const t2 = performance.now();
    const built = m._native.buildGraph(graph.toData());
    const t3 = performance.now();
    built.dispose();
    t.exportImport.push(t1 - t0); t.shapes.push(t2 - t1); t.build.push(t3 - t2); t.total.push(t3 - t0);
    const tree = m.tree();
    inlineAttentionModuleCalls(graph, tree, (path, meth, inline) => nativeSync(() => m._native.exportGraph(meth, { inline, path })));
    const t4 = performance.now();
    const r = decomposeAttention(graph, { tree });
    t.decompose.push(performance.now() - t4);
    if (r.decomposed.length !== 12) throw new Error(`decomposed ${r.decomposed.length}`);
    await propagateShapes(graph, m, spec);
    const t5 = performance.now();
    analyzeGraph(graph);
    t.analysis.push(performance.now() - t5);
  }
  for (const [k, v] of Object.entries(t)) console.log(`${k.padEnd(14)} median ${median(v).toFixed(2)} ms  (min ${Math.min(...v).toFixed(2)}, max ${Math.max(...v).toFixed(2)})`);
  m.dispose();
}
main().catch((e) => { console.error(e); process.exit(1); });
