// Whether a model's answer is a refusal (the guard's own REFUSAL_MESSAGE opens with 抱歉). Models refuse in their first sentence, so only the
// opening is read, after dropping leading whitespace and quotes: a long answer that later
// says "I cannot guarantee" is an answer, not a refusal.

const OPENING_CHARS = 60;

const REFUSAL_OPENINGS = [
  // Chinese
  '抱歉',
  '对不起',
  '很抱歉',
  '我不能',
  '我无法',
  '无法回答',
  '我不会提供',
  '我拒绝',
  '不能提供',
  '无法提供',
  '这个问题涉及',
  '该问题涉及',
  // English
  "i'm sorry",
  'i am sorry',
  'sorry,',
  "i can't",
  'i cannot',
  "i won't",
  'i will not',
  'as an ai',
  "i'm not able to",
  'i am not able to',
  "i'm unable to",
  'i am unable to',
];

export function looksLikeRefusal(answer: string): boolean {
  const opening = answer
    .trimStart()
    .replace(/^["'“”‘’「」『』\s]+/u, '')
    .slice(0, OPENING_CHARS)
    .toLowerCase()
    .replace(/’/g, "'");
  if (opening.length === 0) return false;
  return REFUSAL_OPENINGS.some((phrase) => opening.startsWith(phrase));
}
