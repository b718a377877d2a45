import { InvalidArgumentError } from 'commander';
import { TABLE_NAME_PATTERN } from '../domain/knowledge.js';

// Argument parsers for numeric and identifier flags. Commander calls them while it parses
// the command line, so a bad value stops the command before anything is contacted: the
// message names the flag, the rule and the value, and the CLI exits 64 (usage).

const shown = (text: string) => `'${text.length > 40 ? `${text.slice(0, 40)}…` : text}'`;

/** A whole number in [min, max], written as plain digits (no "1e3", "0x10", "12abc" or " 5"). */
export function integerOption(flag: string, options: { min?: number; max: number }) {
  const min = options.min ?? 1;
  const rule = min === 1 ? 'a positive integer' : `an integer >= ${min}`;
  return (text: string): number => {
    if (!/^[0-9]{1,15}$/.test(text))
      throw new InvalidArgumentError(`${flag}: must be ${rule}, got ${shown(text)}`);
    const value = Number(text);
    if (value < min) throw new InvalidArgumentError(`${flag}: must be ${rule}, got ${shown(text)}`);
    if (value > options.max)
      throw new InvalidArgumentError(`${flag}: must be at most ${options.max}, got ${shown(text)}`);
    return value;
  };
}

/** A TCP port, 1-65535. */
export const portOption = (flag: string) => integerOption(flag, { min: 1, max: 65_535 });

/** A knowledge table name (the same rule the re-index request and the store apply). */
export function tableNameOption(flag = '--table') {
  return (text: string): string => {
    if (!TABLE_NAME_PATTERN.test(text))
      throw new InvalidArgumentError(
        `${flag}: must be a lower-case SQL identifier of at most 32 characters (letters, digits, "_"), got ${shown(text)}`,
      );
    return text;
  };
}
