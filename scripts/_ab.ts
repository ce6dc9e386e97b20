import { loadModel } from '../lib/program/load-model';
import { prepareGraphs } from '../lib/pipeline/prepare';
import { readNpy } from '../lib/torchscript/npy';
import { Tensor, nativeOf } from '../lib/torchscript/tensor';
import type { TypedArray } from '../lib/torchscript/binding';
(async () => {
  const F = '.torchgraph/models/6cba95ab47fa86df/resnet18';
  const a = readNpy(`${F}/input_0.npy`);
  const x = Tensor.from(a.data as TypedArray, a.shape, a.dtype);
  const m = await loadModel(`${F}/traced.pt`, { device: 'cpu' });
  const specs = [{ shape: x.shape, dtype: x.dtype as 'float32' }];
  const variants: Record<string, any> = {};
  const opts: Record<string, object> = JSON.parse(process.argv[2] ?? '{"on":{},"off":{"maxPools":false}}');
  for (const [k, o] of Object.entries(opts)) variants[k] = m._native.buildGraph((await prepareGraphs(m, specs, o)).fused.toData());
  const args = m._resolveInputs([nativeOf(x)]);
  const t: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let r = 0; r < 60; r++) for (const k of Object.keys(variants)) { const res = await variants[k].run(args); if (r >= 5) t[k].push(res.ms); }
  const med = (v: number[]) => [...v].sort((p, q) => p - q)[v.length >> 1];
  for (const k of Object.keys(t)) console.log(k, med(t[k]).toFixed(2), 'min', Math.min(...t[k]).toFixed(2));
})();
