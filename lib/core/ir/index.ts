// Public surface of the graph IR.
export * from './serialized';
export * from './types';
export {
  Block, Node, Value, SIDE_EFFECT_KINDS, isInPlaceKind, outOfPlaceKind, ivalueToJs, dataInput, getAttrObject, type ConstantValue, type Use,
} from './node';
export { Graph, moduleSelf, type CreateNodeOptions } from './graph';
export { GraphVerifyError } from './verify';
export { formatAttr, formatIValue, type PrintOptions } from './print';
export { GRAPH_JSON_FORMAT, TensorPlaceholder, isTensorPlaceholder, type GraphJson, type JsonOptions } from './serialize';
