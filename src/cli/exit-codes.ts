/** Exit codes CI relies on: `qwenops canary --wait` exits 0 promoted, 2 rolled back, 1 error. */
export const EXIT = {
  ok: 0,
  error: 1,
  rolledBack: 2,
  usage: 64,
} as const;
