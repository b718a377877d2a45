// The GPUs the planner knows: memory as the driver reports it (nvidia-smi "Total", MiB; from
// the cards' published specifications and memory of nvidia-smi output, not measured here),
// and whether the card computes in bfloat16 (Turing does not: T4 serves in float16).

export const GPU_TYPES = ['A10', 'T4', 'L4', 'A100-40G', 'A100-80G', 'H100-80G'] as const;
export type GpuType = (typeof GPU_TYPES)[number];

export interface GpuSpec {
  type: GpuType;
  memoryMiB: number;
  bf16: boolean;
  /** Whether vLLM's FlashAttention backend runs on it (Ampere and newer). */
  flashAttention: boolean;
}

export const GPUS: Record<GpuType, GpuSpec> = {
  A10: { type: 'A10', memoryMiB: 23_028, bf16: true, flashAttention: true },
  T4: { type: 'T4', memoryMiB: 15_360, bf16: false, flashAttention: false },
  L4: { type: 'L4', memoryMiB: 23_034, bf16: true, flashAttention: true },
  'A100-40G': { type: 'A100-40G', memoryMiB: 40_960, bf16: true, flashAttention: true },
  'A100-80G': { type: 'A100-80G', memoryMiB: 81_920, bf16: true, flashAttention: true },
  'H100-80G': { type: 'H100-80G', memoryMiB: 81_559, bf16: true, flashAttention: true },
};
