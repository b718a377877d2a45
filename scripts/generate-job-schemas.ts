// Writes jobs/schemas/*.schema.json from the zod schemas in src/domain/job-results.ts, so
// the Python Job entrypoints validate their result JSON against exactly what the workers
// parse. Run after changing a result schema:
//   npx tsx scripts/generate-job-schemas.ts && npx biome format --write jobs/schemas
// (test/unit/kubernetes/job-schemas.test.ts fails while the files are out of date).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { evaluationResultSchema, quantizeResultSchema } from '../src/domain/job-results.js';

export const JOB_SCHEMAS_DIR = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'jobs',
  'schemas',
);

/** File name -> JSON text, as committed. */
export function renderJobSchemas(): Record<string, string> {
  const render = (id: string, title: string, schema: z.ZodType) =>
    `${JSON.stringify(
      {
        $id: `https://qwenops.dev/schemas/${id}`,
        title,
        description:
          'Generated from src/domain/job-results.ts by scripts/generate-job-schemas.ts; do not edit.',
        ...z.toJSONSchema(schema, { target: 'draft-2020-12' }),
      },
      null,
      2,
    )}\n`;
  return {
    'quantize-result.schema.json': render(
      'quantize-result.schema.json',
      'Quantize Job result',
      quantizeResultSchema,
    ),
    'evaluation-result.schema.json': render(
      'evaluation-result.schema.json',
      'Evaluate Job result',
      evaluationResultSchema,
    ),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [file, text] of Object.entries(renderJobSchemas())) {
    writeFileSync(path.join(JOB_SCHEMAS_DIR, file), text);
    console.log(`wrote jobs/schemas/${file}`);
  }
}
