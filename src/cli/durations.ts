import { InvalidArgumentError } from 'commander';

// Duration flags: "<number><unit>", parsed while commander reads the command line. Each
// command says which units, whether decimals, a space before the unit or a bare number
// (in a default unit) pass, and the message a bad value gets.

export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd';

export interface Duration {
  amount: number;
  unit: DurationUnit;
}

export interface DurationSyntax {
  units: readonly DurationUnit[];
  /** The unit of a bare number; without it a unit is required. */
  bareUnit?: DurationUnit;
  /** "1.5h" passes (else whole numbers only). */
  decimals: boolean;
  /** "30 s" passes (else the unit follows the number directly). */
  spaced: boolean;
  /** The InvalidArgumentError message for anything else. */
  message: string;
}

const MS: Record<DurationUnit, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `text` under `syntax`; leading and trailing whitespace is ignored. */
export function parseDuration(text: string, syntax: DurationSyntax): Duration {
  const number = syntax.decimals ? '\\d+(?:\\.\\d+)?' : '\\d+';
  const unit = `(${syntax.units.join('|')})${syntax.bareUnit ? '?' : ''}`;
  const match = new RegExp(`^\\s*(${number})${syntax.spaced ? '\\s*' : ''}${unit}\\s*$`).exec(text);
  if (!match) throw new InvalidArgumentError(syntax.message);
  return { amount: Number(match[1]), unit: (match[2] ?? syntax.bareUnit) as DurationUnit };
}

export function durationMs(duration: Duration): number {
  return duration.amount * MS[duration.unit];
}

const SECONDS: Record<Exclude<DurationUnit, 'ms'>, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

export function durationSeconds(duration: Duration): number {
  return duration.unit === 'ms' ? duration.amount / 1000 : duration.amount * SECONDS[duration.unit];
}
