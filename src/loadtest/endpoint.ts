import { type Dispatcher, request as undiciRequest } from 'undici';
import { classifyTransportError } from './request.js';

// Where requests go. Users give a server root (http://host:8000), an OpenAI base
// (http://host:8000/v1, KServe's .../openai/v1) or the full chat URL; all three work.

export interface ChatEndpoint {
  origin: string;
  /** Path (with query) of /chat/completions. */
  chatPath: string;
  /** Path of /models, for discovering the served model name. */
  modelsPath: string;
  /** The chat URL, for reports. */
  chatUrl: string;
}

export function resolveChatEndpoint(url: string): ChatEndpoint {
  const parsed = new URL(url);
  let base = parsed.pathname.replace(/\/+$/, '');
  if (base.endsWith('/chat/completions')) base = base.slice(0, -'/chat/completions'.length);
  else if (!/\/v\d+$/.test(base)) base = `${base}/v1`;
  const chatPath = `${base}/chat/completions${parsed.search}`;
  return {
    origin: parsed.origin,
    chatPath,
    modelsPath: `${base}/models${parsed.search}`,
    chatUrl: `${parsed.origin}${chatPath}`,
  };
}

/** The target cannot be reached or refuses the setup requests: nothing was measured. */
export class LoadTargetError extends Error {
  override readonly name = 'LoadTargetError';
  // The endpoint may come back (a restarting pod): retried by the activity's policy.
  readonly failureType = 'LoadTargetUnreachable';
  readonly retryable = true;
}

/**
 * Checks the server answers and finds the model name: the given one, else the first of
 * GET /models. A refused connection fails here with a clear message instead of producing
 * a report full of connect errors.
 */
export async function discoverModel(
  endpoint: ChatEndpoint,
  model: string | undefined,
  options: { dispatcher: Dispatcher; headers: Record<string, string>; timeoutMs: number },
): Promise<{ model: string; warnings: string[]; listed?: boolean }> {
  const url = `${endpoint.origin}${endpoint.modelsPath}`;
  let status: number;
  let text: string;
  try {
    const response = await undiciRequest(url, {
      dispatcher: options.dispatcher,
      headers: options.headers,
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    status = response.statusCode;
    text = await response.body.text();
  } catch (error) {
    const { errorClass, message } = classifyTransportError(error, false);
    if (errorClass === 'connect_error' || errorClass === 'timeout' || errorClass === 'connection_reset') {
      throw new LoadTargetError(`cannot reach ${endpoint.origin}: ${message}`);
    }
    throw new LoadTargetError(`GET ${url} failed: ${message}`);
  }
  let ids: string[] = [];
  if (status === 200) {
    try {
      const parsed = JSON.parse(text) as { data?: { id?: unknown }[] };
      ids = (parsed.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
    } catch {
      // Not an OpenAI models list: only matters when we need a model name from it.
    }
  }
  if (model !== undefined) {
    // Whether the server lists the model; unknown when it lists nothing.
    const listed = ids.length > 0 ? ids.includes(model) : undefined;
    const warnings =
      listed === false
        ? [`model ${JSON.stringify(model)} is not among the served models (${ids.join(', ')})`]
        : [];
    return { model, warnings, listed };
  }
  if (status === 401 || status === 403) {
    throw new LoadTargetError(
      `GET ${url} answered ${status}: the server wants credentials (QWENOPS_LLM_API_KEY)`,
    );
  }
  const first = ids[0];
  if (first === undefined) {
    throw new LoadTargetError(
      `no model name given and GET ${url} (HTTP ${status}) listed none: pass the served model name (--model)`,
    );
  }
  return { model: first, warnings: [], listed: true };
}
