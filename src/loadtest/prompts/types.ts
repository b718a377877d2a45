// One request's worth of prompt: the chat messages and, optionally, its own output length.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface PromptItem {
  id: string;
  messages: ChatMessage[];
  /** Overrides the test's maxTokens for this prompt (JSONL "max_tokens"). */
  maxTokens?: number;
}
