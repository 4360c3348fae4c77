/** In-memory fakes of the ports, each proven against its port's conformance suite where one exists. */
export { makeScriptedAllocation, type ScriptedAllocation, type ScriptedFailure } from './allocation.js';
export { type MemoryBudget, makeMemoryBudget } from './budget.js';
export { type MemoryObjectStore, makeMemoryObjectStore } from './memory-object-store.js';
export { type ListedVersion, type MemorySource, makeMemorySource } from './source.js';
export { type MemoryState, makeMemoryState } from './sync-state.js';
