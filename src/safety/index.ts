import { AnyGuard, type Guard, LexiconGuard } from './guard.js';
import { type Lexicon, loadLexiconFile, parseLexicon } from './lexicon.js';
import defaultLexiconDocument from './lexicons/default.json' with { type: 'json' };
import { ModerationGuard } from './moderation.js';

export {
  AnyGuard,
  type Guard,
  type GuardMatch,
  type GuardResult,
  LexiconGuard,
  REFUSAL_MESSAGE,
} from './guard.js';
export { type Lexicon, LexiconError, loadLexiconFile, parseLexicon } from './lexicon.js';
export { ModerationError, ModerationGuard } from './moderation.js';

/** The shipped lexicon (src/safety/lexicons/default.json). */
export function defaultLexicon(): Lexicon {
  return parseLexicon(defaultLexiconDocument, 'src/safety/lexicons/default.json');
}

export interface GuardSettings {
  /** Lexicon file; the shipped default otherwise. */
  lexiconFile?: string;
  /** OpenAI-compatible API root of a moderation classifier; checked after the lexicon. */
  moderationUrl?: string;
  moderationModel?: string;
  moderationApiKey?: string;
}

/** Settings from QWENOPS_SAFETY_LEXICON, QWENOPS_MODERATION_URL / _MODEL / _API_KEY. */
export function guardSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): GuardSettings {
  return {
    lexiconFile: env.QWENOPS_SAFETY_LEXICON || undefined,
    moderationUrl: env.QWENOPS_MODERATION_URL || undefined,
    moderationModel: env.QWENOPS_MODERATION_MODEL || undefined,
    moderationApiKey: env.QWENOPS_MODERATION_API_KEY || undefined,
  };
}

/** The lexicon guard, followed by the moderation classifier when one is configured. */
export async function createGuard(settings: GuardSettings = {}): Promise<Guard> {
  const lexicon = settings.lexiconFile ? await loadLexiconFile(settings.lexiconFile) : defaultLexicon();
  const guards: Guard[] = [new LexiconGuard(lexicon)];
  if (settings.moderationUrl) {
    guards.push(
      new ModerationGuard({
        baseUrl: settings.moderationUrl,
        model: settings.moderationModel,
        apiKey: settings.moderationApiKey,
      }),
    );
  }
  return guards.length === 1 ? (guards[0] as Guard) : new AnyGuard(guards);
}
