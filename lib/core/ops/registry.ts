// The op registry: which schema a node of some kind with some input types was matched against,
// and so the position of each named argument. A node's own schema (exported from TorchScript)
// wins; emitted nodes fall back to the table of known overloads.
import { parseSchema, pickOverload, type OpSchema } from './schema';
import { SCHEMA_TABLE } from './schemas-table';
import { OWN_OP_SCHEMAS } from './own-schemas';

let byName: Map<string, OpSchema[]> | undefined;

function known(kind: string): readonly OpSchema[] {
  if (!byName) {
    byName = new Map();
    for (const text of [...SCHEMA_TABLE, ...Object.values(OWN_OP_SCHEMAS)]) {
      const s = parseSchema(text);
      const list = byName.get(s.name);
      if (list) list.push(s); else byName.set(s.name, [s]);
    }
  }
  return byName.get(kind) ?? [];
}

/** The schema of a node: its own (`text`), else the known overload taking these input kinds. */
export function schemaOf(kind: string, inputKinds: readonly string[], text?: string): OpSchema | undefined {
  if (text) {
    const s = parseSchema(text);
    if (s.args.length === inputKinds.length) return s;
  }
  return pickOverload(known(kind), inputKinds);
}

/** Position of the argument `name`, or -1 when the op (as matched) has no such argument. */
export function argIndex(kind: string, inputKinds: readonly string[], name: string, text?: string): number {
  return schemaOf(kind, inputKinds, text)?.args.findIndex((a) => a.name === name) ?? -1;
}

export type { OpSchema, ArgSpec } from './schema';
