import { seededRandom } from '../arrivals.js';
import type { PromptItem } from './types.js';

// Random-length prompts for sweeping prefill cost: Chinese text drawn from common
// characters, one character being roughly one token for Qwen-family tokenizers, with the
// length uniform in [minInputTokens, maxInputTokens]. Seeded, so a seed gives the same set.

const COMMON_CHARACTERS =
  '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴切夜热';
const PUNCTUATION = ',,,。、?!';

export function syntheticPrompts(options: {
  minInputTokens: number;
  maxInputTokens: number;
  count: number;
  seed: number;
}): PromptItem[] {
  const random = seededRandom(options.seed ^ 0x5eed);
  const span = options.maxInputTokens - options.minInputTokens + 1;
  const items: PromptItem[] = [];
  for (let i = 0; i < options.count; i++) {
    const length = options.minInputTokens + Math.floor(random() * span);
    let text = '请阅读下面的文字并简要复述:';
    for (let n = 0; n < length; n++) {
      // A punctuation mark every 8-20 characters keeps the text sentence-shaped.
      text +=
        n > 0 && n % (8 + Math.floor(random() * 12)) === 0
          ? PUNCTUATION[Math.floor(random() * PUNCTUATION.length)]
          : COMMON_CHARACTERS[Math.floor(random() * COMMON_CHARACTERS.length)];
    }
    items.push({ id: `synthetic-${i}`, messages: [{ role: 'user', content: text }] });
  }
  return items;
}
