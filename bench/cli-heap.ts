/**
 * Imported first by the bench's children that stand in for the CLI: applies the CLI's V8 heap
 * tuning (workers/heap.ts) before anything else loads, as cli/provenant.ts does.
 */
import { keepYoungGenerationSmall } from '../workers/heap.js';

keepYoungGenerationSmall();
