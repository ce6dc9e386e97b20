// The bench's onnxruntime-node anchor (lib/app/ort-anchor.ts) on its cases: `npm run bench --
// --anchors` times it beside PyTorch's anchors on every anchored case, `--ort` alone (no PyTorch
// anchors) on issue #28's four models: ViT-B/16 batch 1, ResNet-18 batch 2 (transformers'
// ResNetModel, the corpus bench set's), BERT-base eager 2x128 and GPT-2 small eager 2x128. After the
// timed runs, each case's peak RSS: a fresh fused-only process against a fresh ORT-node-only one.
import type { RebuiltAnchorTarget } from '../lib/app/anchors';
import { STANDARD_SUITE, type SuiteCase } from '../lib/app/bench';
import { MODEL_NAMES } from '../lib/app/models';
import { formatOrtTable, measurePeaks, ORT_RUNNER, ortExternal, type OnnxExport, type OrtRow } from '../lib/app/ort-anchor';
import { OrtInstallError } from '../lib/app/ort-install';
import type { BenchReport } from '../lib/pipeline/bench';

/** Issue #28's corpus bench set models, after the standard suite's ViT-B/16 batch 1. */
export const ORT_CORPUS_CASES = ['resnet18', 'bert_base_eager_128', 'gpt2_small_eager_128'];

/** The four models of the ORT-node comparison, `corpus` being the bench set's cases; 10 repetitions each. */
export function ortSet(corpus: SuiteCase[]): SuiteCase[] {
  const vit = STANDARD_SUITE.find((c) => c.name === 'vit_b_16 batch 1')!;
  const picked = ORT_CORPUS_CASES.map((n) => corpus.find((c) => c.name === n)).filter((c) => c !== undefined);
  return [vit, ...picked].map((c) => ({ ...c, warmup: 2, repetitions: 10 }));
}

function targetOf(c: SuiteCase, file: string): RebuiltAnchorTarget | undefined {
  if (c.anchor && 'manifest' in c.anchor) return { ...c.anchor, file };
  if (MODEL_NAMES.includes(c.model)) return { builtin: c.model, file, inputs: c.inputs };
  return undefined;
}

/** `cases` with onnxruntime-node timed in their repetitions (those the anchors can rebuild), and
 * the table of ours against it, with both peaks, once the bench has run. */
export function withOrtNode(cases: SuiteCase[], log: (s: string) => void): { cases: SuiteCase[]; table(r: BenchReport): Promise<string> } {
  const started = new Map<string, { exp: OnnxExport; file: string; maxAbsDiff: number }>();
  const out = cases.map((c): SuiteCase => ({
    ...c,
    startExternal: async (file) => {
      const target = targetOf(c, file);
      if (!target) {
        log(`bench: ${c.name}: no ORT-node anchor (it rebuilds built-in models and corpus transformers classes)`);
        return { runners: [], close: () => {} };
      }
      try {
        const { anchor, exp } = await ortExternal(target, log);
        started.set(c.name, { exp, file, maxAbsDiff: anchor.maxAbsDiff });
        return { runners: [anchor.runner], close: anchor.close };
      } catch (e) {
        // An anchor that cannot be prepared (no install, an export that fails its check) is left
        // out of its case with the reason, as a PyTorch anchor's mode is; the bench goes on.
        const why = e instanceof OrtInstallError ? e.message : `${(e as Error).message ?? e}`.split('\n').at(-1);
        log(`bench: ${c.name}: no ORT-node anchor: ${why}`);
        return { runners: [], close: () => {} };
      }
    },
  }));
  const table = async (report: BenchReport): Promise<string> => {
    const rows: OrtRow[] = [];
    for (const r of report.cases) {
      const s = started.get(r.name);
      const ort = r.comparison.external?.[ORT_RUNNER];
      if (!s || !ort) continue;
      log(`bench: ${r.name}: peak RSS of a fused-only and an ORT-node-only process`);
      const peaks = await measurePeaks(s.exp, s.file, r.inputs);
      rows.push({ name: r.name, fusedMs: r.comparison.runs.fused.medianMs, ortMs: ort.medianMs, maxAbsDiff: s.maxAbsDiff, peaks });
    }
    return rows.length ? `ours against onnxruntime-node (medians of the same repetitions):\n${formatOrtTable(rows)}` : '';
  };
  return { cases: out, table };
}
