// Load a torch.export program (.pt2) as a Module: the archive's weights read once by libtorch
// into the tensors of an in-memory module tree, and forward built from the program's graph by
// the same native builder as every TorchScript graph. Everything that takes a Module (views,
// shapes, decomposition, fusion, runs, bench) then takes the program. Its "original" run is
// the program as exported, executed by our builder: libtorch 2.13 has no public C++ runner
// for plain exported programs.
import { binding, type ArchiveTensorSpec, type NativeTensor } from '../torchscript/binding';
import { Module, type LoadOptions } from '../torchscript/module';
import { native, nativeSync, TorchGraphError } from '../core/errors';
import { readProgramArchive, type ProgramArchive } from './archive';
import { checkInputShapes, inputConstraints } from './constraints';
import { dtypeOf, symInt, type WeightEntry } from './format';
import { programToGraph, type ProgramGraph, type ProgramTensorRef } from './to-graph';
import { unflattenModuleCalls } from './unflatten';

export interface ProgramInfo {
  path: string;
  torchVersion?: string;
  schemaVersion: string;
  inputNames: string[];
  /** Nodes of the program's graph (as model.json lists them). */
  programNodes: number;
  /** Node count per target, e.g. {"torch.ops.aten.linear.default": 49}. */
  targets: Record<string, number>;
  /** Export-time assertions left out of the graph, by target (see to-graph.ts). */
  dropped: Record<string, number>;
  /** Time to read the archive and build the graph data (ms), and to load the weights. */
  readMs: number;
  weightsMs: number;
}

const programInfo = new WeakMap<Module, ProgramInfo>();

/** What was read from a .pt2, for a module loaded by loadProgram. */
export function programInfoOf(m: Module): ProgramInfo | undefined { return programInfo.get(m); }

function weightEntry(a: ProgramArchive, ref: ProgramTensorRef): { record: string; entry: WeightEntry } {
  const inWeights = a.weights.config[ref.target];
  if (inWeights && ref.kind !== 'constant') return { record: `data/weights/${inWeights.path_name}`, entry: inWeights };
  const inConstants = a.constants.config[ref.target];
  if (inConstants) return { record: `data/constants/${inConstants.path_name}`, entry: inConstants };
  if (inWeights) return { record: `data/weights/${inWeights.path_name}`, entry: inWeights };
  throw new TorchGraphError('ERR_LOAD',
    `cannot load '${a.path}': ${ref.kind} '${ref.target}' has no entry in the archive's weights or constants configs. ` +
    'The archive is incomplete: save the program again with torch.export.save.');
}

function tensorSpec(a: ProgramArchive, ref: ProgramTensorRef): ArchiveTensorSpec {
  const { record, entry } = weightEntry(a, ref);
  const m = entry.tensor_meta;
  const dtype = dtypeOf(m.dtype);
  const sizes = m.sizes.map(symInt);
  const strides = m.strides.map(symInt);
  const offset = symInt(m.storage_offset);
  if (entry.use_pickle) {
    throw new TorchGraphError('ERR_LOAD',
      `cannot load '${a.path}': ${ref.kind} '${ref.target}' is stored pickled (a tensor subclass or an unusual storage). ` +
      'Save plain tensors: export the model with ordinary parameters and buffers.');
  }
  if (!dtype || sizes.includes(null) || strides.includes(null) || offset === null || !a.records.has(record)) {
    throw new TorchGraphError('ERR_LOAD', `cannot load '${a.path}': ${ref.kind} '${ref.target}' (${record}) ` +
      `has an unsupported dtype code ${m.dtype}, a symbolic size, or no record. ` +
      'Export with plain float/int tensors of fixed size.');
  }
  return { record, dtype, sizes: sizes as number[], strides: strides as number[], offset };
}

function targetCounts(a: ProgramArchive): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of a.program.graph_module.graph.nodes) out[n.target] = (out[n.target] ?? 0) + 1;
  return out;
}

/** Read a .pt2 program into its graph (no weights loaded): what inspect and tests look at. */
export async function readProgram(path: string, device?: string): Promise<{ archive: ProgramArchive; program: ProgramGraph }> {
  const archive = await readProgramArchive(path);
  const b = binding();
  try {
    const program = programToGraph(archive.program, (name, overload) => nativeSync(() => b.opSchema(name, overload)), device);
    return { archive, program };
  } catch (e) {
    if (e instanceof TorchGraphError && e.code === 'ERR_LOAD') {
      throw new TorchGraphError('ERR_LOAD', `cannot load '${path}': ${e.message}`, { cause: e });
    }
    throw e;
  }
}

export interface ProgramInput { name: string; shape: (number | null)[]; dtype?: string }

/** The user inputs of a program as its signature names them, with the example's shapes (null where
 * symbolic) and dtypes; the archive is read, no weights are loaded. */
export async function programInputs(path: string): Promise<ProgramInput[]> {
  const archive = await readProgramArchive(path);
  const values = archive.program.graph_module.graph.tensor_values;
  const out: ProgramInput[] = [];
  for (const spec of archive.program.graph_module.signature.input_specs) {
    const arg = (spec as { user_input?: { arg: { as_tensor?: { name: string } } } }).user_input?.arg.as_tensor;
    if (!arg) continue;
    const meta = values[arg.name];
    out.push({ name: arg.name, shape: meta ? meta.sizes.map(symInt) : [], dtype: meta ? dtypeOf(meta.dtype) : undefined });
  }
  return out;
}

/** Load a torch.export program as a Module. Rejects with ERR_LOAD saying what is unsupported and what to do. */
export async function loadProgram(path: string, options: LoadOptions = {}): Promise<Module> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new TorchGraphError('ERR_INVALID_ARG', 'loadProgram(path): path must be a non-empty string');
  }
  const device = options.device ?? 'cpu';
  const t0 = performance.now();
  const { archive, program } = await readProgram(path, device);
  const readMs = performance.now() - t0;
  const specs = program.tensors.map((ref) => tensorSpec(archive, ref));
  const t1 = performance.now();
  const tensors: NativeTensor[] = await native(() => binding().loadTensors(path, specs, device));
  const weightsMs = performance.now() - t1;
  // The module structure: every module call's run of nodes becomes that module's method (callees first).
  const classes = new Map(program.modules.map((m) => [m.path, m.cls]));
  const root = program.graph.clone();
  const methods = unflattenModuleCalls(root, (p) => classes.get(p));
  const handle = nativeSync(() => binding().createModule({
    modules: program.modules,
    tensors: program.tensors.map((ref, i) => ({ module: ref.module, name: ref.name, kind: ref.kind, tensor: tensors[i] })),
    methods: [
      ...methods.map((m) => ({ module: m.module, name: m.name, graph: m.graph.toData() })),
      { module: '', name: 'forward', graph: root.toData() },
    ],
  }, device));
  const constraints = inputConstraints(archive.program);
  const m = Module._fromNative(handle, path, undefined, {
    ...(archive.torchgraphMetadata !== undefined ? { metadata: archive.torchgraphMetadata } : {}),
    checkShapes: (shapes) => checkInputShapes(constraints, shapes),
  });
  const p = archive.program;
  programInfo.set(m, {
    path, torchVersion: p.torch_version, schemaVersion: `${p.schema_version.major}.${p.schema_version.minor}`,
    inputNames: program.inputNames, dropped: program.dropped, programNodes: p.graph_module.graph.nodes.length,
    targets: targetCounts(archive), readMs, weightsMs,
  });
  return m;
}
