// How often a worker may send an activity's heartbeats at most. The SDK's default is 0.8 of
// the heartbeat timeout (48 s for 60 s), and a cancellation reaches a running activity only
// with a heartbeat: an abort, which waits for cancelled serving activities to stop
// (WAIT_CANCELLATION_COMPLETED), would take most of a minute. Capped, it takes seconds,
// for one small heartbeat RPC every 2 s per running activity.
export const MAX_HEARTBEAT_THROTTLE_INTERVAL = '2s';
