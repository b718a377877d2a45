import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import { type Random, seededRandom, seedFromText } from '../../domain/random.js';
import type { Logger } from '../../observability/logger.js';
import { type ErrorCounter, SIMULATED_HEADER, sendJson } from './http-io.js';
import { type FaultSettings, type FaultSettingsInput, parseFaultSettings } from './options.js';
import { openAiError } from './requests.js';

// Injected faults, so tests and drills can see a rollout react to a misbehaving revision:
// extra latency, error answers (500 / 429 / 503, or a gateway's HTML 502), a stall of every
// request started within a window, and connections cut half-way through the answer. The
// settings start from the options (env) and change at run time through /admin/faults.
// Which request a fault hits is drawn from a seeded random stream, so runs are repeatable.

const HTML_502 =
  '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx (qwenops-simulator fault injection)</center></body></html>\n';

export class FaultInjector {
  private settings: FaultSettings;
  private stallEnd: number;
  private readonly chance: Random;

  constructor(
    private readonly initial: FaultSettings,
    seed: number,
    startedAt: number,
    private readonly errors: ErrorCounter,
    private readonly logger: Logger,
  ) {
    this.settings = { ...initial };
    this.stallEnd = initial.stallMs > 0 ? startedAt + initial.stallMs : 0;
    this.chance = seededRandom(seedFromText(`faults:${seed}`));
  }

  /** A copy of the settings in force. */
  get current(): FaultSettings {
    return { ...this.settings };
  }

  /** Requests granted a slot before this instant (performance.now()) wait until then; 0: none. */
  get stallUntil(): number {
    return this.stallEnd;
  }

  get extraLatencyMs(): number {
    return this.settings.extraLatencyMs;
  }

  /** Merges the given settings into the current ones; a stallMs restarts the stall window now. */
  set(input: Partial<FaultSettingsInput>): FaultSettings {
    this.settings = parseFaultSettings(input, this.settings);
    if (input.stallMs !== undefined)
      this.stallEnd = input.stallMs > 0 ? performance.now() + input.stallMs : 0;
    this.logger.warn({ faults: this.settings }, 'fault injection settings changed');
    return { ...this.settings };
  }

  /** Back to the start-up settings, without a stall. */
  clear(): FaultSettings {
    this.settings = { ...this.initial };
    this.stallEnd = 0;
    this.logger.info({ faults: this.settings }, 'fault injection settings restored to start-up values');
    return { ...this.settings };
  }

  /** Failures decided at arrival; true when the request was answered by one. */
  answered(res: http.ServerResponse): boolean {
    const faults = this.settings;
    if (faults.htmlErrorPct > 0 && this.chance() * 100 < faults.htmlErrorPct) {
      this.errors.error(502);
      res.writeHead(502, { 'content-type': 'text/html', [SIMULATED_HEADER]: 'true' });
      res.end(HTML_502);
      return true;
    }
    if (faults.errorRatePct > 0 && this.chance() * 100 < faults.errorRatePct) {
      const status = faults.errorStatus;
      this.errors.error(status);
      const headers: http.OutgoingHttpHeaders =
        status === 429 || status === 503 ? { 'retry-after': String(faults.retryAfterSeconds) } : {};
      const message =
        status === 429
          ? 'simulated rate limit (fault injection): too many requests'
          : status === 503
            ? 'simulated overload (fault injection): service unavailable'
            : 'simulated internal server error (fault injection)';
      sendJson(res, status, openAiError(status, message), headers);
      return true;
    }
    return false;
  }

  /** Whether this request's connection is to be cut half-way through its answer. */
  resetsMidStream(): boolean {
    const pct = this.settings.resetMidStreamPct;
    return pct > 0 && this.chance() * 100 < pct;
  }
}
