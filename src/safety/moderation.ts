import { type Dispatcher, request } from 'undici';
import { z } from 'zod';
import type { Guard, GuardResult } from './guard.js';

// An OpenAI-compatible moderation classifier behind the Guard port: POST {baseUrl}/moderations
// {model, input} → {results: [{flagged, categories, category_scores?}]}, the shape of
// OpenAI's endpoint and of guard-model servers that mimic it. The answer is validated: a
// non-2xx status, a body that is not JSON, or one of another shape is an error naming what
// is wrong — never a pass.

const moderationResponseSchema = z.object({
  id: z.string().optional(),
  model: z.string().optional(),
  results: z
    .array(
      z.object({
        flagged: z.boolean(),
        categories: z.record(z.string(), z.boolean()),
        category_scores: z.record(z.string(), z.number()).optional(),
      }),
    )
    .min(1),
});

export class ModerationError extends Error {
  override readonly name = 'ModerationError';
  constructor(
    message: string,
    readonly url: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ModerationGuardOptions {
  /** API root including the version, e.g. http://127.0.0.1:8001/v1 */
  baseUrl: string;
  model?: string;
  apiKey?: string;
  dispatcher?: Dispatcher;
  timeoutMs?: number;
}

export class ModerationGuard implements Guard {
  readonly name: string;
  private readonly url: string;

  constructor(private readonly options: ModerationGuardOptions) {
    this.url = `${options.baseUrl.replace(/\/+$/, '')}/moderations`;
    this.name = `moderation@${options.model ?? 'default'}`;
  }

  async check(text: string): Promise<GuardResult> {
    let status: number;
    let body: string;
    try {
      const response = await request(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}),
        },
        body: JSON.stringify({ ...(this.options.model ? { model: this.options.model } : {}), input: text }),
        dispatcher: this.options.dispatcher,
        headersTimeout: this.options.timeoutMs ?? 10_000,
        bodyTimeout: this.options.timeoutMs ?? 10_000,
      });
      status = response.statusCode;
      body = await response.body.text();
    } catch (err) {
      throw new ModerationError(
        `moderation request to ${this.url} failed: ${(err as Error).message}`,
        this.url,
        undefined,
        {
          cause: err,
        },
      );
    }
    if (status < 200 || status >= 300) {
      throw new ModerationError(
        `moderation endpoint ${this.url} answered HTTP ${status}: ${body.replace(/\s+/g, ' ').slice(0, 200)}`,
        this.url,
        status,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new ModerationError(
        `malformed moderation response from ${this.url}: not JSON (${body.slice(0, 80)})`,
        this.url,
        status,
      );
    }
    const parsed = moderationResponseSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`)
        .join('; ');
      throw new ModerationError(
        `malformed moderation response from ${this.url}: ${issues}`,
        this.url,
        status,
      );
    }
    const matches = parsed.data.results.flatMap((result) =>
      Object.entries(result.categories)
        .filter(([, flagged]) => flagged)
        .map(([category]) => ({ word: category, category })),
    );
    const flagged = parsed.data.results.some((r) => r.flagged);
    if (flagged && matches.length === 0) matches.push({ word: 'flagged', category: 'flagged' });
    return flagged
      ? { blocked: true, matches, category: matches[0]?.category }
      : { blocked: false, matches: [] };
  }
}
