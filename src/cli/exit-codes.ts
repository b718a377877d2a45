/** Exit codes CI relies on (README "Exit codes" lists them all): `qwenops canary --wait` exits
 * 0 promoted, 2 rolled back, 4 refused because another release holds the service, 5/6 when
 * the CI job was cancelled (detached / aborted), 1 any other error; `qwenops loadtest` exits 3
 * when an SLO is missed; 64 bad input. */
export const EXIT = {
  ok: 0,
  error: 1,
  rolledBack: 2,
  /** `qwenops loadtest`: the test ran and an SLO was missed. */
  sloMissed: 3,
  /** The release was refused: another release (named in the message) holds the service's lease. */
  serviceBusy: 4,
  /** SIGINT/SIGTERM while waiting: the CLI detached, the release goes on. */
  cancelledDetached: 5,
  /** SIGINT/SIGTERM while waiting with --abort-on-cancel: the release was told to abort. */
  cancelledAborted: 6,
  usage: 64,
} as const;
