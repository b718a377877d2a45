import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOB_SCHEMAS_DIR, renderJobSchemas } from '../../../scripts/generate-job-schemas.js';

describe('jobs/schemas', () => {
  it('are what scripts/generate-job-schemas.ts renders from src/domain/job-results.ts', () => {
    for (const [file, text] of Object.entries(renderJobSchemas())) {
      // Compared as JSON: the committed files are biome-formatted.
      const committed: unknown = JSON.parse(readFileSync(path.join(JOB_SCHEMAS_DIR, file), 'utf8'));
      expect(
        committed,
        `jobs/schemas/${file} is stale: run "npx tsx scripts/generate-job-schemas.ts && npx biome format --write jobs/schemas"`,
      ).toEqual(JSON.parse(text));
    }
  });
});
