import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { registerAnalysisCommands } from './analysis.js';
import { registerAuditCommands } from './audit.js';
import { registerCodecServerCommands } from './codec-server.js';
import { registerKnowledgeCommands } from './kb.js';
import { registerLeaseCommands } from './lease.js';
import { registerLoadTestCommands } from './loadtest.js';
import { registerPipelineCommands } from './pipelines.js';
import { registerPlanCommands } from './plan.js';
import { registerScheduleCommands } from './schedule.js';
import { registerStackCommands } from './stack.js';

/**
 * A command group registers its subcommands on the program. Each group lives in its own
 * file in this folder; add it to COMMAND_GROUPS below.
 */
export type CommandGroup = (program: Command, context: () => CliContext) => void;

export const COMMAND_GROUPS: CommandGroup[] = [
  registerPipelineCommands,
  registerStackCommands,
  registerLoadTestCommands,
  registerKnowledgeCommands,
  registerScheduleCommands,
  registerLeaseCommands,
  registerCodecServerCommands,
  registerAnalysisCommands,
  registerAuditCommands,
  registerPlanCommands,
];
