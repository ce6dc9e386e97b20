// `npm run bench`: the standard suite (mha_demo, ViT-B/16 batch 1 and 8, attention at
// L=2048), or the models named on the command line. `--json` prints the report as JSON.
import { runBench } from '../lib/runtime/bench';

const args = process.argv.slice(2);
const json = args.includes('--json');
runBench({
  models: args.filter((a) => !a.startsWith('--')), inputs: [], device: process.env.TORCHGRAPH_DEVICE ?? 'cpu', seed: 0,
  json, verbose: false, stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s),
}).then((r) => { process.exitCode = r.passed ? 0 : 1; }, (e) => { console.error(e instanceof Error ? e.message : e); process.exitCode = 2; });
