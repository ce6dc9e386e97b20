// optimize()'s rewrite in a worker thread. Decomposing and lowering a model builds many graphs
// and shape runs in JavaScript; on the caller's thread V8 grows its young generation for them and
// keeps it (measured: ~30 MiB more resident after a ResNet-50, a process peak 1.05x the
// original's instead of 0.95-0.97x). A worker's heap is freed when it ends. The weights are not
// copied: the module and the tensors cross threads as native handles (share / adopt).
import * as nodePath from 'path';
import { isMainThread, parentPort, Worker, workerData } from 'worker_threads';
import { Graph, type GraphData } from '../core/ir';
import { fromNative, TorchGraphError, type ErrorCode } from '../core/errors';
import { binding, type NativeModule, type NativeTensor } from '../torchscript/binding';
import { Module } from '../torchscript/module';
import type { ArgumentInfo } from '../torchscript/arguments';
import type { InputSpec } from '../torchscript/propagate-shapes';
import type { PackedWeight } from '../fusion/lowering-pass';
import { rewriteModel, type OptimizedMetadata, type OptimizeOptions, type OptimizeReport, type RewrittenModel } from './optimize-rewrite';

interface RewriteRequest {
  torchgraphOptimize: true;
  token: number;
  path: string;
  signature: ArgumentInfo[];
  metadata: string | undefined;
  inputs: InputSpec[];
  options: OptimizeOptions;
  maxPlans: number;
  /** The original's timed runs, taken on the caller's thread before the worker started. */
  originalMs?: number[];
}

/** A RewrittenModel as it crosses threads: native handles as tokens. */
interface SharedRewrite {
  token: number;
  path: string;
  portable: unknown;
  run: unknown;
  packed: [string, PackedWeight][];
  signature: ArgumentInfo[];
  metadata: OptimizedMetadata;
  report: unknown;
  inPlace: boolean;
}

type WorkerMessage =
  | { kind: 'weights-moved' }
  | { kind: 'done'; rewrite: SharedRewrite }
  | { kind: 'error'; code: string; message: string };

const TENSOR = '$sharedTensor';

/**
 * The worker's young generation, capped: left to grow (to 32 MiB on Node 20) it is resident
 * beside the weights while the rewrite runs, and became the process peak (ResNet-50: 388-391 MiB
 * against 353-358 at 2-8 MiB, for the same rewrite time within the noise).
 */
const WORKER_YOUNG_GENERATION_MB = 4;

/** `data` with every native tensor replaced by a token another thread adopts. */
function shareTensors(data: unknown): unknown {
  if (data === null || typeof data !== 'object') return data;
  if (data instanceof (binding().Tensor as unknown as abstract new () => object)) {
    return { [TENSOR]: binding().shareTensor(data as NativeTensor) };
  }
  if (Array.isArray(data)) return data.map(shareTensors);
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, shareTensors(v)]));
}

/** shareTensors undone on this thread: each token adopted. */
function adoptTensors(data: unknown): unknown {
  if (data === null || typeof data !== 'object') return data;
  if (Array.isArray(data)) return data.map(adoptTensors);
  const entries = Object.entries(data);
  if (entries.length === 1 && entries[0][0] === TENSOR) return binding().adopt(entries[0][1] as number);
  return Object.fromEntries(entries.map(([k, v]) => [k, adoptTensors(v)]));
}

/**
 * The worker's script: this file. Where the library runs from its TypeScript sources (tests,
 * `npx tsx`), the worker loads it through tsx's CommonJS hook: tsx's ESM loader (`--import`),
 * inherited, does not reach a worker's entry point on Node 20.
 */
function workerScript(): { file: string; execArgv: string[] } {
  const file = nodePath.join(__dirname, `optimize-worker${nodePath.extname(__filename)}`);
  if (!file.endsWith('.ts')) return { file, execArgv: process.execArgv };
  const execArgv: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const flagWithTsx = ['--import', '--require', '-r', '--loader'].includes(args[i]) && args[i + 1]?.includes('tsx');
    if (flagWithTsx) i++;
    else if (!args[i].includes('tsx')) execArgv.push(args[i]);
  }
  return { file, execArgv: [...execArgv, '--require', require.resolve('tsx/cjs')] };
}

/**
 * rewriteModel in a worker thread. `module` is shared with it, and disposed here when the worker
 * has moved its weights (as rewriteModel disposes it); before that a failure leaves it as it was.
 */
export function rewriteInWorker(
  module: Module, inputs: readonly InputSpec[], options: OptimizeOptions, maxPlans: number, originalMs?: number[],
): Promise<RewrittenModel> {
  const token = module._native.share();
  const request: RewriteRequest = {
    torchgraphOptimize: true, token, path: module.path, signature: module._signature('forward').map((a) => ({ ...a })),
    metadata: module.metadata ? JSON.stringify(module.metadata) : undefined,
    inputs: inputs.map((s) => ({ shape: [...s.shape], dtype: s.dtype })), options: { ...options }, maxPlans,
    ...(originalMs ? { originalMs } : {}),
  };
  const { file, execArgv } = workerScript();
  return new Promise<RewrittenModel>((resolve, reject) => {
    let settled = false;
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      // A worker that never adopted the module leaves it parked under its token: release it.
      try { (binding().adopt(token) as NativeModule).dispose(); } catch { /* adopted by the worker */ }
      reject(e);
    };
    let worker: Worker;
    try {
      worker = new Worker(file, {
        workerData: request, execArgv, stdout: false, stderr: false,
        resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
      });
    } catch (e) {
      fail(new TorchGraphError('ERR_NATIVE', `optimize: the worker thread did not start (${(e as Error).message}); `
        + 'optimize(module, inputs, { worker: false }) rewrites on this thread'));
      return;
    }
    worker.on('message', (m: WorkerMessage) => {
      if (m.kind === 'weights-moved') {
        module.dispose();
        worker.postMessage('disposed');
      } else if (m.kind === 'done') {
        settled = true;
        void worker.terminate();
        try {
          resolve(adoptRewrite(m.rewrite));
        } catch (e) {
          reject(e);
        }
      } else {
        fail(new TorchGraphError(m.code as ErrorCode, m.message));
        void worker.terminate();
      }
    });
    worker.on('error', (e) => fail(fromNative(e)));
    worker.on('exit', (code) => fail(new TorchGraphError('ERR_NATIVE',
      `optimize: the worker thread ended (exit code ${code}) before the rewrite finished`)));
  });
}

function adoptRewrite(r: SharedRewrite): RewrittenModel {
  const module = Module._fromNative(binding().adopt(r.token) as NativeModule, r.path, r.signature);
  return {
    module, portable: Graph.fromData(adoptTensors(r.portable) as GraphData), run: Graph.fromData(adoptTensors(r.run) as GraphData),
    packed: new Map(r.packed), signature: r.signature, metadata: r.metadata,
    report: adoptTensors(r.report) as OptimizeReport, inPlace: r.inPlace,
  };
}

/** In the worker: adopt the module, rewrite it, hand the result back. */
async function serveRewrite(port: NonNullable<typeof parentPort>, request: RewriteRequest): Promise<void> {
  const module = Module._fromNative(binding().adopt(request.token) as NativeModule, request.path,
    request.signature.length ? request.signature : undefined, request.metadata !== undefined ? { metadata: request.metadata } : {});
  const weightsMoved = () => new Promise<void>((resolve) => {
    port.once('message', () => resolve());
    port.postMessage({ kind: 'weights-moved' } satisfies WorkerMessage);
  });
  try {
    const r = await rewriteModel(module, request.inputs, request.options, request.maxPlans,
      request.originalMs ? { originalMs: request.originalMs } : undefined, weightsMoved);
    const rewrite: SharedRewrite = {
      token: r.module._native.share(), path: r.module.path, portable: shareTensors(r.portable.toData()), run: shareTensors(r.run.toData()),
      packed: [...r.packed], signature: r.signature, metadata: r.metadata, report: shareTensors(r.report), inPlace: r.inPlace,
    };
    r.module.dispose();
    port.postMessage({ kind: 'done', rewrite } satisfies WorkerMessage);
  } catch (e) {
    module.dispose();
    const err = e as { code?: string; message?: string };
    const code = typeof err.code === 'string' ? err.code : 'ERR_NATIVE';
    port.postMessage({ kind: 'error', code, message: err.message ?? String(e) } satisfies WorkerMessage);
  }
}

if (!isMainThread && parentPort && (workerData as Partial<RewriteRequest> | null)?.torchgraphOptimize) {
  void serveRewrite(parentPort, workerData as RewriteRequest);
}
