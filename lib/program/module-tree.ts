// The module tree a torch.export program's weights hang on: the classes of the submodules its
// nodes came from (nn_module_stack), and the signature's parameters, buffers and lifted
// constants bound to them. to-graph.ts reads them as prim::GetAttr of `self`.
import { parseModuleStack, type ModelJson } from './format';

export interface ProgramTensorRef {
  /** Dotted module path of the owner ('' = root) and attribute name. */
  module: string;
  name: string;
  kind: 'parameter' | 'buffer' | 'constant';
  /** The name in the program's signature (parameter_name, buffer_name or constant name). */
  target: string;
}

/** Module classes by path, from every node's nn_module_stack; TorchScript-style names, mangled when repeated. */
export function moduleClasses(program: ModelJson, tensorPaths: string[]): Map<string, string> {
  const types = new Map<string, string>();
  for (const n of program.graph_module.graph.nodes) {
    for (const f of parseModuleStack(n.metadata?.nn_module_stack)) if (!types.has(f.path)) types.set(f.path, f.type);
  }
  const paths = new Set<string>(['']);
  for (const p of [...types.keys(), ...tensorPaths]) {
    const parts = p.split('.');
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join('.'));
  }
  const used = new Map<string, number>();
  const classes = new Map<string, string>();
  for (const p of [...paths].sort((a, b) => a.split('.').length - b.split('.').length || (a < b ? -1 : 1))) {
    const type = types.get(p) ?? (p === '' ? 'torch.export.ExportedProgram' : 'torch.export.Module');
    const base = `__torch__.${type.replace(/[^A-Za-z0-9_.]/g, '_')}`;
    const k = used.get(base) ?? 0;
    used.set(base, k + 1);
    const dot = base.lastIndexOf('.');
    classes.set(p === '' ? '' : p, k === 0 ? base : `${base.slice(0, dot)}.___torch_mangle_${k}${base.slice(dot)}`);
  }
  return classes;
}

/** "a.b.c" -> ["a.b", "c"]: the owner's path and the attribute name. */
export function splitTarget(fqn: string): [string, string] {
  const dot = fqn.lastIndexOf('.');
  return dot < 0 ? ['', fqn] : [fqn.slice(0, dot), fqn.slice(dot + 1)];
}

/** The signature's tensors bound to the module: parameters, buffers and lifted constants. */
export function boundTensors(program: ModelJson): { arg: string; ref: ProgramTensorRef }[] {
  const out: { arg: string; ref: ProgramTensorRef }[] = [];
  for (const spec of program.graph_module.signature.input_specs) {
    const s = spec as Record<string, {
      arg: { name: string }; parameter_name?: string; buffer_name?: string; tensor_constant_name?: string;
    }>;
    const [kind, body] = Object.entries(s)[0] ?? [];
    const target = kind === 'parameter' ? body.parameter_name
      : kind === 'buffer' ? body.buffer_name
      : kind === 'tensor_constant' ? body.tensor_constant_name
      : undefined;
    if (target === undefined) continue;
    const [module, name] = kind === 'tensor_constant' ? ['', target.replace(/[^A-Za-z0-9_]/g, '_')] : splitTarget(target);
    const refKind = kind === 'tensor_constant' ? 'constant' : (kind as 'parameter' | 'buffer');
    out.push({ arg: body.arg.name, ref: { module, name, kind: refKind, target } });
  }
  return out;
}
