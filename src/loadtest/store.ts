import { assertStorageKey } from '../domain/validation.js';
import type { ArtifactStore } from '../storage/port.js';
import type { LoadTestReport } from './report.js';
import { renderLoadTestHtml } from './report-html.js';

// Reports go to the artifact store as report.json + report.html under one prefix. The
// store writes atomically, so a retried activity overwrites a whole report, never half one.

export interface StoredLoadTestReport {
  jsonKey: string;
  htmlKey: string;
  jsonUri: string;
  htmlUri: string;
}

export async function storeLoadTestReport(
  store: ArtifactStore,
  prefix: string,
  report: LoadTestReport,
): Promise<StoredLoadTestReport> {
  const base = assertStorageKey(prefix.replace(/\/+$/, ''), 'reportPrefix');
  const jsonKey = `${base}/report.json`;
  const htmlKey = `${base}/report.html`;
  await store.put(htmlKey, renderLoadTestHtml(report), { contentType: 'text/html; charset=utf-8' });
  // JSON last: its presence means the whole report is there.
  await store.putJson(jsonKey, report);
  return { jsonKey, htmlKey, jsonUri: store.uri(jsonKey), htmlUri: store.uri(htmlKey) };
}
