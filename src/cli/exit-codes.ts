/** Exit codes CI relies on: `qwenops canary --wait` exits 0 promoted, 2 rolled back, 1 error;
 * `qwenops loadtest` exits 3 when an SLO is missed. */
export const EXIT = {
  ok: 0,
  error: 1,
  rolledBack: 2,
  /** `qwenops loadtest`: the test ran and an SLO was missed. */
  sloMissed: 3,
  usage: 64,
} as const;
