/** The placement planner lives in shared/ (activities plan repairs too); re-exported for workflows' callers. */
export * from '../shared/placement.js';
