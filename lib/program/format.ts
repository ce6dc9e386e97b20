// The parts of torch.export's serialized program (torch/_export/serde/schema.py, schema
// version 8, torch 2.13) that the reader uses, and the enum codes it maps to c10's.
import type { DType } from '../core/ir/serialized';

/** The schema major version this reader understands (torch/_export/serde/schema.py SCHEMA_VERSION). */
export const SCHEMA_MAJOR = 8;

export interface TensorArg { name: string }
export interface SymArg { as_name?: string; as_int?: number; as_float?: number | string; as_bool?: boolean }
export interface OptionalTensorArg { as_tensor?: TensorArg; as_none?: boolean }

/** One union member set (schema.py Argument). */
export interface Argument {
  as_none?: boolean;
  as_tensor?: TensorArg;
  as_tensors?: TensorArg[];
  as_optional_tensor?: OptionalTensorArg;
  as_optional_tensors?: OptionalTensorArg[];
  as_int?: number;
  as_ints?: number[];
  as_float?: number | string;
  as_floats?: (number | string)[];
  as_bool?: boolean;
  as_bools?: boolean[];
  as_string?: string;
  as_strings?: string[];
  as_sym_int?: SymArg;
  as_sym_ints?: SymArg[];
  as_sym_float?: SymArg;
  as_sym_floats?: SymArg[];
  as_sym_bool?: SymArg;
  as_scalar_type?: number;
  as_memory_format?: number;
  as_layout?: number;
  as_device?: { type: string; index: number | null };
  [other: string]: unknown;
}

export interface NamedArgument { name: string; arg: Argument; kind?: number | null }

export interface SerializedNode {
  target: string;
  inputs: NamedArgument[];
  outputs: Argument[];
  metadata?: { stack_trace?: string; nn_module_stack?: string; torch_fn?: string; [k: string]: unknown };
  name?: string;
}

export interface SymIntValue { as_int?: number; as_expr?: { expr_str: string; hint?: { as_int?: number } | null } }

export interface TensorMeta {
  dtype: number;
  sizes: SymIntValue[];
  strides: SymIntValue[];
  storage_offset: SymIntValue;
  requires_grad?: boolean;
  device?: { type: string; index: number | null };
  layout?: number;
}

export interface SerializedGraph {
  inputs: Argument[];
  outputs: Argument[];
  nodes: SerializedNode[];
  tensor_values: Record<string, TensorMeta>;
  sym_int_values?: Record<string, unknown>;
}

export type InputSpec =
  | { user_input: { arg: Argument } }
  | { parameter: { arg: TensorArg; parameter_name: string } }
  | { buffer: { arg: TensorArg; buffer_name: string; persistent?: boolean } }
  | { tensor_constant: { arg: TensorArg; tensor_constant_name: string } }
  | { constant_input: { name: string; value: Argument } }
  | Record<string, unknown>;

export type OutputSpec = { user_output: { arg: Argument } } | Record<string, unknown>;

export interface ModelJson {
  graph_module: {
    graph: SerializedGraph;
    signature: { input_specs: InputSpec[]; output_specs: OutputSpec[] };
    module_call_graph?: { fqn: string; signature: { forward_arg_names?: string[] } | null }[];
  };
  schema_version: { major: number; minor: number };
  /** The range of each symbolic size (torch.export's Dim(min, max)), by symbol. */
  range_constraints?: Record<string, { min_val?: number | null; max_val?: number | null }>;
  torch_version?: string;
  opset_version?: Record<string, number>;
}

export interface WeightEntry { path_name: string; is_param?: boolean; use_pickle?: boolean; tensor_meta: TensorMeta }
export interface WeightsConfig { config: Record<string, WeightEntry> }

/** schema.py ScalarType -> our dtype names. */
const DTYPES: Record<number, DType> = {
  1: 'uint8', 2: 'int8', 3: 'int16', 4: 'int32', 5: 'int64', 6: 'float16', 7: 'float32', 8: 'float64',
  10: 'complex64', 11: 'complex128', 12: 'bool', 13: 'bfloat16',
};
/** schema.py ScalarType -> c10::ScalarType (what an int ScalarType argument carries in TorchScript). */
const C10_SCALAR: Record<number, number> = { 1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 9, 11: 10, 12: 11, 13: 15 };
/** schema.py MemoryFormat -> c10::MemoryFormat. */
const C10_MEMORY_FORMAT: Record<number, number> = { 1: 0, 2: 2, 3: 3, 4: 1 };
/** schema.py Layout -> c10::Layout. */
const C10_LAYOUT: Record<number, number> = { 7: 0, 1: 1, 2: 3, 3: 4, 4: 5, 5: 6, 6: 2 };

export function dtypeOf(code: number): DType | undefined { return DTYPES[code]; }
export function c10ScalarType(code: number): number | undefined { return C10_SCALAR[code]; }
export function c10MemoryFormat(code: number): number | undefined { return C10_MEMORY_FORMAT[code]; }
export function c10Layout(code: number): number | undefined { return C10_LAYOUT[code]; }

/** A size: its value, or null when symbolic. */
export function symInt(s: SymIntValue): number | null {
  return typeof s.as_int === 'number' ? s.as_int : null;
}

export interface ModuleFrame { path: string; type: string }

/** "L__self__,,pkg.Model;L__self__attn,attn,torch.nn.modules.activation.MultiheadAttention" ->
 * frames outermost first (key, path and type per entry; the path may hold commas). */
export function parseModuleStack(s: string | undefined): ModuleFrame[] {
  if (!s) return [];
  return s.split(';').filter((e) => e.length > 0).map((e) => {
    const first = e.indexOf(',');
    const last = e.lastIndexOf(',');
    return { path: e.slice(first + 1, last), type: e.slice(last + 1) };
  });
}

/** The innermost "File \"f\", line N" of a stack trace, as "f:N". */
export function sourceOf(trace: string | undefined): string | undefined {
  if (!trace) return undefined;
  const all = [...trace.matchAll(/File "([^"]+)", line (\d+)/g)];
  const m = all.at(-1);
  return m ? `${m[1]}:${m[2]}` : undefined;
}
