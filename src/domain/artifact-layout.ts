// Where a promotion's artifacts live in the object store: one layout, shared by the
// workflows (report prefixes), the GPU Job stages and the report writer.

import { dnsName } from './names.js';

/** Storage keys for a promotion's artifacts. Model ids are validated, so they are safe key parts. */
export const artifactKeys = {
  original: (model: string, revision: string) => `models/${model}/${revision}/original`,
  quantized: (model: string, revision: string, method: string, bits: number, groupSize: number) =>
    `models/${model}/${revision}/${method}-w${bits}-g${groupSize}`,
  /** Workflow ids come from users (Temporal UI), so they are slugged before becoming key parts. */
  runDir: (workflowId: string) => `runs/${dnsName([workflowId])}`,
};
