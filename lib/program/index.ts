export { loadProgram, readProgram, programInfoOf, type ProgramInfo } from './load';
export { readProgramArchive, isProgramPath, type ProgramArchive } from './archive';
export { programToGraph, opOfTarget, type ProgramGraph } from './to-graph';
export { loadModel } from './load-model';
