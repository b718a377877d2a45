import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

// Self-contained HTML pages: Chart.js (the UMD build from the npm package) and the data
// are inlined, so a report opens from the artifact store, an e-mail attachment or a CI
// artifact with no network access and nothing to install.

let chartJsSource: string | undefined;

/** The Chart.js UMD bundle, read once from node_modules. */
export function chartJsBundle(): string {
  if (chartJsSource === undefined) {
    const entry = createRequire(import.meta.url).resolve('chart.js');
    const source = readFileSync(path.join(path.dirname(entry), 'chart.umd.min.js'), 'utf8');
    // A "</script" inside inline script text would end the element early.
    chartJsSource = source.replace(/<\/script/gi, '<\\/script');
  }
  return chartJsSource;
}

export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** JSON safe to place inside a <script> element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

const STYLE = `
  :root { color-scheme: light; --ok: #1a7f37; --bad: #cf222e; --muted: #57606a; --line: #d0d7de; }
  body { font: 14px/1.5 -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #1f2328; }
  h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
  .muted { color: var(--muted); } .ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
  .verdict { display: inline-block; padding: 4px 12px; border-radius: 6px; color: #fff; font-weight: 600; }
  .verdict.ok { background: var(--ok); color: #fff; } .verdict.bad { background: var(--bad); color: #fff; } .verdict.na { background: #6e7781; }
  table { border-collapse: collapse; margin: 8px 0; width: 100%; } th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right; }
  th:first-child, td:first-child { text-align: left; } th { background: #f6f8fa; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
  .chart { position: relative; height: 320px; } ul.warnings li { color: #9a6700; }
  code { background: #f6f8fa; padding: 1px 4px; border-radius: 4px; }
`;

export function htmlPage(options: {
  title: string;
  body: string;
  script?: string;
  withCharts?: boolean;
}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(options.title)}</title>
<style>${STYLE}</style>
${options.withCharts ? `<script>${chartJsBundle()}</script>` : ''}
</head>
<body>
${options.body}
${options.script ? `<script>${options.script}</script>` : ''}
</body>
</html>
`;
}
