export { loadProgram, readProgram, programInfoOf, programInputs, type ProgramInfo, type ProgramInput } from './load';
export { readProgramArchive, isProgramPath, type ProgramArchive } from './archive';
export { programToGraph, opOfTarget, type ProgramGraph } from './to-graph';
export { loadModel } from './load-model';
