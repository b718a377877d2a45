import type { Command } from 'commander';
import { verifyPipelineAudit } from '../../audit/pipeline-verify.js';
import { verifyRagAudit } from '../../audit/rag-audit.js';
import { InputValidationError } from '../../domain/validation.js';
import { createArtifactStore } from '../../storage/index.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import type { CommandGroup } from './index.js';

// `qwenops audit verify [--from DATE --to DATE] [--log rag|pipeline|all]`: checks the hash
// chains of the audit logs in the artifact store (README "Audit log"); exits 1 at a break.

const DATE = /^\d{4}-\d{2}-\d{2}$/;

export const registerAuditCommands: CommandGroup = (program: Command, context: () => CliContext) => {
  const audit = program.command('audit').description('the audit logs: verify their hash chains');
  audit
    .command('verify')
    .description('verify the RAG request log and the pipeline audit records; reports the first break')
    .option('--from <date>', 'first day (YYYY-MM-DD, UTC)')
    .option('--to <date>', 'last day (YYYY-MM-DD, UTC; default today)')
    .option('--log <which>', 'rag, pipeline or all', 'all')
    .action(async (opts: { from?: string; to?: string; log: string }) => {
      const issues: Array<{ path: string; message: string }> = [];
      for (const flag of ['from', 'to'] as const) {
        const value = opts[flag];
        if (value !== undefined && (!DATE.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))))
          issues.push({ path: `--${flag}`, message: `"${value}" is not a date YYYY-MM-DD` });
      }
      if (opts.from && opts.to && DATE.test(opts.from) && DATE.test(opts.to) && opts.to < opts.from)
        issues.push({ path: '--to', message: `is before --from ${opts.from}` });
      if (!['rag', 'pipeline', 'all'].includes(opts.log))
        issues.push({ path: '--log', message: 'must be rag, pipeline or all' });
      if (issues.length > 0) throw new InputValidationError('audit verify flags', issues);
      const ctx = context();
      const store = await createArtifactStore(ctx.config.store);
      const range = { from: opts.from, to: opts.to };
      const rag = opts.log === 'pipeline' ? undefined : await verifyRagAudit(store, range);
      const pipeline = opts.log === 'rag' ? undefined : await verifyPipelineAudit(store, range);
      const ok = !rag?.firstBreak && !pipeline?.firstBreak;
      ctx.print({ ok, range, rag, pipeline }, () => {
        const lines: string[] = [];
        if (rag) {
          lines.push(
            `rag log: ${rag.records} records in ${rag.objects} objects${rag.firstSeq !== undefined ? ` (seq ${rag.firstSeq}..${rag.lastSeq})` : ''}: ${rag.firstBreak ? 'BROKEN' : 'ok'}`,
          );
          if (rag.unclaimed)
            lines.push(
              `  ${rag.unclaimed.length} unclaimed batch(es) set aside (a writer lost the race for their seq): ${rag.unclaimed.join(', ')}`,
            );
          const b = rag.firstBreak;
          if (b)
            lines.push(
              `  first break at #${b.index} ${b.key}: ${b.field}: expected ${b.expected}, found ${b.found}`,
              `  ${b.message}`,
            );
        }
        if (pipeline) {
          lines.push(
            `pipeline log: ${pipeline.records} records, ${pipeline.writers} writer chains, ${pipeline.unchained} unchained: ${pipeline.firstBreak ? 'BROKEN' : 'ok'}`,
          );
          const b = pipeline.firstBreak;
          if (b)
            lines.push(
              `  first break in writer ${b.writer} at #${b.index} ${b.key}: ${b.field}: expected ${b.expected}, found ${b.found}`,
              `  ${b.message}`,
            );
        }
        return lines.join('\n');
      });
      if (!ok) process.exitCode = EXIT.error;
    });
};
