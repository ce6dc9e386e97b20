// Plain data exchanged with the native addon: how a TorchScript graph crosses the boundary.
// The native side produces and consumes exactly these shapes; lib/core/ir/ builds Graph objects
// from them and writes them back. Ints that may exceed 2^53 (attributes, constants) are
// BigInt; tensor payloads are opaque handles owned by the native side.

export type DType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool'
  | 'complex64' | 'complex128';

/** A TorchScript type. `repr` is libtorch's annotation string, kept for printing. */
export type TypeData =
  | { kind: 'Tensor'; dtype?: DType; shape?: (number | null)[]; strides?: (number | null)[]; device?: string; requiresGrad?: boolean }
  | { kind: 'Int' } | { kind: 'Float' } | { kind: 'Bool' } | { kind: 'String' } | { kind: 'None' }
  | { kind: 'Device' } | { kind: 'Number' } | { kind: 'Complex' }
  | { kind: 'Optional'; elem: TypeData }
  | { kind: 'List'; elem: TypeData }
  | { kind: 'Tuple'; elems: TypeData[] }
  | { kind: 'Dict'; key: TypeData; value: TypeData }
  | { kind: 'Class'; name: string }
  /** Anything else (Generator, Union, Any, ...): carried by its annotation string. */
  | { kind: 'Other'; repr: string };

export interface ValueData {
  /** Unique within one exported graph, across all blocks. */
  id: number;
  /** TorchScript debug name without the leading %, when it has one. */
  name?: string;
  type: TypeData;
}

/** An opaque native tensor handle (see lib/torchscript/binding.ts). */
export interface TensorHandleLike {
  readonly shape: number[];
  readonly dtype: DType;
}

export type IValueData =
  | { type: 'int'; value: bigint }
  | { type: 'float'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'str'; value: string }
  | { type: 'none' }
  | { type: 'device'; value: string }
  | { type: 'tensor'; tensor: TensorHandleLike }
  | { type: 'list'; items: IValueData[]; elem: TypeData }
  | { type: 'tuple'; items: IValueData[] }
  /** A TorchScript enum member (timm's Format.NCHW): its class, name and value. */
  | { type: 'enum'; enumType: string; name: string; value: IValueData };

/** A node attribute, tagged with libtorch's attribute kind. */
export type AttrData =
  | { kind: 'i'; value: bigint }
  | { kind: 'f'; value: number }
  | { kind: 's'; value: string }
  | { kind: 't'; value: TensorHandleLike }
  | { kind: 'is'; value: bigint[] }
  | { kind: 'fs'; value: number[] }
  | { kind: 'ss'; value: string[] }
  | { kind: 'ival'; value: IValueData }
  | { kind: 'ty'; value: TypeData };

/** One frame of the module call stack that produced a node (outermost first). */
export interface ScopeFrame {
  /** Dotted module path from the root module, e.g. "encoder.layers.encoder_layer_0.self_attention". */
  path: string;
  /** Qualified class name of that module, e.g. "__torch__.torch.nn.modules.activation.MultiheadAttention". */
  cls: string;
  /** The method called on it, usually "forward". */
  method: string;
}

export interface NodeData {
  /** Qualified op name: "aten::linear", "prim::GetAttr", "prim::CallMethod", ... */
  kind: string;
  /** The matched operator schema, e.g. "aten::linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor". */
  schema?: string;
  inputs: number[];
  outputs: ValueData[];
  attrs: Record<string, AttrData>;
  blocks: BlockData[];
  scope?: ScopeFrame[];
  /** "file:line" of the Python source that produced the node, when recorded. */
  source?: string;
}

export interface BlockData {
  inputs: ValueData[];
  outputs: number[];
  nodes: NodeData[];
}

/** A method graph. For a module method the first input is `self` (a Class value). */
export type GraphData = BlockData;
