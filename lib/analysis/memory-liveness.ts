// The memory model's storages and their lifetimes: which tensors own an allocation (views share
// their base's; a fused group writes its outputs directly), when each is allocated (its
// producer's step) and when it is freed (after its last reader's step).
import { VK, type GraphFacts } from '../core/facts';
import type { Schedule } from './memory-schedule';

/** Storage of a value that is not an activation: none (not a tensor, block input), model data, caller's input. */
export const NONE = -1, WEIGHT = -2, INPUT = -3;

export interface Storages {
  /** Storage of each value: an index into the tables below, or NONE, WEIGHT or INPUT. */
  store: Int32Array;
  /** Bytes of each storage. */
  bytes: number[];
  /** Step that allocates each storage. */
  def: number[];
  /** The value owning each storage. */
  root: number[];
  /** Tensors without shape information (counted as 0 bytes). */
  unknownTensors: number;
  /** Bytes of the graph's tensor inputs (their distinct storages). */
  inputBytes: number;
}

export function assignStorages(f: GraphFacts, sch: Schedule): Storages {
  const { fused, groupOfPos, groupRule, internal, stepOfPos } = sch;
  const V = f.values.length;
  const store = new Int32Array(V).fill(NONE);
  const sBytes: number[] = [];
  const sDef: number[] = [];
  const sRoot: number[] = [];
  const sCap: number[] = [];
  const groupStore = new Map<string, number>();
  let unknownTensors = 0;
  let inputBytes = 0;
  const inputRoots = new Set<number>();
  const newStorage = (bytes: number, def: number, root: number, cap = Infinity) => {
    sBytes.push(bytes); sDef.push(def); sRoot.push(root); sCap.push(cap);
    return sBytes.length - 1;
  };
  for (let i = 0; i < V; i++) {
    if (f.vkind[i] !== VK.Tensor || f.scalar[i]) continue;
    if (f.weight[i]) { store[i] = WEIGHT; continue; }
    if (f.input[i]) {
      store[i] = INPUT;
      let r = i;
      while (f.parent[r] >= 0) r = f.parent[r];
      if (!inputRoots.has(r)) { inputRoots.add(r); inputBytes += f.info[r]?.storageBytes ?? 0; }
      continue;
    }
    const q = f.producer[i];
    if (q < 0) continue; // block inputs: loop-carried values live inside their owner's unit
    const t = f.info[i];
    if (!t) unknownTensors++;
    const g = fused ? groupOfPos[q] : -1;
    if (g >= 0) {
      if (internal(i)) continue;
      // A group output: written by the kernel, unless it is a view of something from outside.
      let r = i;
      while (f.parent[r] >= 0 && f.producer[f.parent[r]] >= 0 && groupOfPos[f.producer[f.parent[r]]] === g) r = f.parent[r];
      if (f.parent[r] >= 0) { store[i] = store[f.parent[r]]; continue; }
      const packed = groupRule[g] === 'parallel_projection';
      const key = packed ? `${g}` : `${g}:${r}`;
      let s = groupStore.get(key);
      if (s === undefined) {
        s = newStorage(0, stepOfPos(q), r, packed ? Infinity : (f.info[r]?.storageBytes ?? Infinity));
        groupStore.set(key, s);
      }
      sBytes[s] = Math.min(sCap[s], sBytes[s] + (t?.bytes ?? 0));
      store[i] = s;
      continue;
    }
    if (f.parent[i] >= 0) { store[i] = store[f.parent[i]]; continue; }
    store[i] = newStorage(t?.storageBytes ?? t?.bytes ?? 0, stepOfPos(q), i);
  }
  return { store, bytes: sBytes, def: sDef, root: sRoot, unknownTensors, inputBytes };
}

/** Last step that uses each storage (`end`, past the last step, for graph outputs: never freed). */
export function storageLastUse(f: GraphFacts, sch: Schedule, st: Storages, end: number): Int32Array {
  const { fused, internal, stepOfPos } = sch;
  const V = f.values.length;
  // Last use of every value (containers pass theirs on to what they hold), then of every storage.
  const lastOf = new Int32Array(V).fill(-1);
  for (let i = V - 1; i >= 0; i--) {
    let last = lastOf[i];
    if (f.graphOutput[i]) last = end;
    const own = f.producer[i] >= 0 ? stepOfPos(f.producer[i]) : -1;
    for (const u of f.dataUsers[i]) last = Math.max(last, stepOfPos(u));
    if (!(fused && internal(i))) for (const u of f.metaUsers[i]) last = Math.max(last, stepOfPos(u));
    last = Math.max(last, own);
    lastOf[i] = last;
    const h = f.holds[i];
    if (h) for (const e of h) lastOf[e] = Math.max(lastOf[e], last);
  }
  const sLast = new Int32Array(st.bytes.length).fill(-1);
  for (let i = 0; i < V; i++) { const s = st.store[i]; if (s >= 0) sLast[s] = Math.max(sLast[s], lastOf[i]); }
  return sLast;
}

/** Bytes of the distinct weight storages the graph reads. */
export function weightBytesRead(f: GraphFacts, store: Int32Array): number {
  const weightRoots = new Set<number>();
  for (let i = 0; i < f.values.length; i++) {
    if (store[i] !== WEIGHT || (f.dataUsers[i].length === 0 && f.metaUsers[i].length === 0)) continue;
    let r = i;
    while (f.parent[r] >= 0) r = f.parent[r];
    weightRoots.add(r);
  }
  let weightBytes = 0;
  for (const r of weightRoots) weightBytes += f.info[r]?.storageBytes ?? 0;
  return weightBytes;
}
