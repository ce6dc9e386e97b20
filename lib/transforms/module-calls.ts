// Which module a Class-typed value is, and which calls are torch.nn leaf-module calls
// (torch.fx's default tracer keeps those as single call_module nodes).
import { getAttrObject, moduleSelf, type Graph, type Node, type Value } from '../core/ir';
import { shortClassName } from '../core/ir/types';

/** Containers torch.fx traces through even though they live in torch.nn. */
const NN_CONTAINERS = new Set(['Sequential', 'ModuleList', 'ModuleDict', 'ParameterList', 'ParameterDict']);

/** A torch.nn module other than a container: kept as one call in the standard view. */
export function isLeafModuleClass(qualified: string): boolean {
  return /^__torch__\.torch\.nn\.modules\./.test(qualified) && !NN_CONTAINERS.has(shortClassName(qualified));
}

/** Dotted module path of each Class-typed value reachable from `self` by prim::GetAttr. */
export function modulePaths(g: Graph): Map<Value, string> {
  const paths = new Map<Value, string>();
  const self = moduleSelf(g);
  if (!self) return paths;
  paths.set(self, '');
  for (const n of g.allNodes()) {
    if (n.kind !== 'prim::GetAttr' || n.output.type.kind !== 'Class') continue;
    const parent = paths.get(getAttrObject(n));
    if (parent === undefined) continue;
    const name = n.attr('name');
    if (typeof name !== 'string') continue;
    paths.set(n.output, parent ? `${parent}.${name}` : name);
  }
  return paths;
}

export interface ModuleCall {
  node: Node;
  path: string;
  cls: string;
  method: string;
}

/** The module a prim::CallMethod calls, when its target's path is known. */
export function moduleCallOf(n: Node, paths: Map<Value, string>): ModuleCall | undefined {
  if (n.kind !== 'prim::CallMethod') return undefined;
  const target = n.inputs[0];
  const path = paths.get(target);
  const name = n.attr('name');
  if (path === undefined || target.type.kind !== 'Class' || typeof name !== 'string') return undefined;
  return { node: n, path, cls: target.type.name, method: name };
}

/** The name under which a node is counted: `call_module:<Class>` for leaf module calls, else its kind. */
export function opName(n: Node): string {
  const call = n.meta.callModule as { cls: string } | undefined;
  return call ? `call_module:${shortClassName(call.cls)}` : n.kind;
}
