import type { LatencyStats } from './aggregate.js';
import { escapeHtml, htmlPage, scriptJson } from './html.js';
import type { LoadTestReport } from './report.js';
import { TOKEN_ESTIMATOR_NAME } from './tokens.js';

// The load test report as a page people read: verdict first, then SLOs, latency
// percentiles, charts (latency CDFs, TTFT and throughput over time), errors, pacing and
// the exact request. Charts are drawn by Chart.js from the report's own JSON, embedded.

const METRICS = [
  ['ttft', 'TTFT (time to first token)'],
  ['tpot', 'TPOT (time per output token)'],
  ['itl', 'ITL (inter-token latency)'],
  ['e2e', 'E2E (end-to-end latency)'],
  ['queue', 'Client queue (intended -> sent)'],
] as const;

function num(value: number | undefined, digits = 1): string {
  return value === undefined ? '–' : value.toFixed(digits);
}

function latencyRow(label: string, stats: LatencyStats | undefined): string {
  if (!stats) return `<tr><td>${escapeHtml(label)}</td><td colspan="8" class="muted">not measured</td></tr>`;
  return `<tr><td>${escapeHtml(label)}</td><td>${stats.count}</td><td>${num(stats.meanMs)}</td><td>${num(stats.minMs)}</td><td>${num(stats.p50Ms)}</td><td>${num(stats.p90Ms)}</td><td>${num(stats.p95Ms)}</td><td>${num(stats.p99Ms)}</td><td>${num(stats.maxMs)}</td></tr>`;
}

export function renderLoadTestHtml(report: LoadTestReport): string {
  const r = report.results;
  const p = report.pacing;
  const passed = report.slo.passed;
  const sloRows =
    report.slo.results.length === 0
      ? '<tr><td colspan="5" class="muted">no SLO was set</td></tr>'
      : report.slo.results
          .map(
            (s) =>
              `<tr><td>${escapeHtml(s.label)}</td><td>${escapeHtml(s.comparator)} ${escapeHtml(s.threshold)}</td><td>${s.observed === undefined ? '–' : escapeHtml(num(s.observed, 2))}</td><td class="${s.met ? 'ok' : 'bad'}">${s.met ? 'met' : 'missed'}</td><td>${escapeHtml(s.message)}</td></tr>`,
          )
          .join('\n');
  const errorRows =
    Object.keys(r.errors.byClass).length === 0
      ? '<tr><td colspan="3" class="muted">no errors</td></tr>'
      : Object.entries(r.errors.byClass)
          .map(([errorClass, count]) => {
            const sample = r.errors.samples.find((s) => s.errorClass === errorClass);
            return `<tr><td>${escapeHtml(errorClass)}</td><td>${count}</td><td style="text-align:left">${escapeHtml(sample?.message ?? '')}</td></tr>`;
          })
          .join('\n');
  const warnings =
    report.warnings.length > 0
      ? `<h2>Warnings</h2><ul class="warnings">${report.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>`
      : '';
  // Reports stored before chunk counting have no "chunks" source.
  const chunkCounted = r.tokens.sources.chunks ?? 0;
  const tokenNote = [
    chunkCounted > 0 ? `${chunkCounted} answers without usage: output counted as streamed chunks` : '',
    r.tokens.sources.estimate > 0
      ? `${r.tokens.sources.estimate} answers without usage or stream: ${TOKEN_ESTIMATOR_NAME} estimates`
      : '',
  ]
    .filter(Boolean)
    .map((note) => ` <span class="bad">(${note})</span>`)
    .join('');

  const body = `
<h1>Load test: ${escapeHtml(report.target.model)}</h1>
<div class="muted">${escapeHtml(report.target.chatUrl)} · ${escapeHtml(report.startedAt)} → ${escapeHtml(report.finishedAt)} · report ${escapeHtml(report.id)}</div>
<p><span class="verdict ${report.slo.results.length === 0 ? 'na' : passed ? 'ok' : 'bad'}">${report.slo.results.length === 0 ? 'NO SLO SET' : passed ? 'SLOs MET' : 'SLO MISSED'}</span></p>
<table>
<tr><th>requests</th><th>ok</th><th>errors</th><th>error rate %</th><th>req/s</th><th>output tok/s</th><th>total tok/s</th><th>goodput req/s</th><th>goodput %</th></tr>
<tr><td>${r.requests}</td><td>${r.ok}</td><td>${r.failed}</td><td>${num(r.errorRatePct, 2)}</td><td>${num(r.throughput.requestsPerSecond, 2)}</td><td>${num(r.throughput.outputTokensPerSecond)}</td><td>${num(r.throughput.totalTokensPerSecond)}</td><td>${num(r.goodput.requestsPerSecond, 2)}</td><td>${num(r.goodput.pct, 1)}</td></tr>
</table>

<h2>SLOs</h2>
<table><tr><th>objective</th><th>threshold</th><th>observed</th><th>result</th><th style="text-align:left">detail</th></tr>
${sloRows}
</table>

<h2>Latency (ms)</h2>
<p class="muted">${p.mode === 'open' ? "Open loop: latencies run from each request's scheduled send time, so client or server stalls are included (no coordinated omission); the client queue row shows the part spent before sending." : 'Closed loop: latencies run from the actual send.'} TTFT: first chunk with choices; ITL: per chunk; E2E: last chunk with choices; TPOT = (E2E − TTFT) / (output tokens − 1).</p>
<table><tr><th>metric</th><th>samples</th><th>mean</th><th>min</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>max</th></tr>
${METRICS.map(([key, label]) => latencyRow(label, r.latency[key])).join('\n')}
</table>

<div class="grid">
<div><h2>Latency CDFs</h2><div class="chart"><canvas id="cdf"></canvas></div></div>
<div><h2>TTFT and E2E over time</h2><div class="chart"><canvas id="latency-time"></canvas></div></div>
<div><h2>Throughput over time</h2><div class="chart"><canvas id="throughput-time"></canvas></div></div>
</div>

<h2>Tokens</h2>
<table><tr><th>input total</th><th>output total</th><th>mean input</th><th>mean output</th><th>source</th></tr>
<tr><td>${r.tokens.input}</td><td>${r.tokens.output}</td><td>${num(r.tokens.meanInput)}</td><td>${num(r.tokens.meanOutput)}</td><td>usage ${r.tokens.sources.usage}, chunks ${chunkCounted}, estimate ${r.tokens.sources.estimate}${tokenNote}</td></tr></table>

<h2>Errors</h2>
<table><tr><th>class</th><th>count</th><th style="text-align:left">example</th></tr>
${errorRows}
</table>
${r.errors.maxRetryAfterSeconds !== undefined ? `<p>The server asked clients to retry after up to ${r.errors.maxRetryAfterSeconds} s (Retry-After); a load test does not retry, the answers are counted as errors.</p>` : ''}

<h2>Load delivered</h2>
<table><tr><th>mode</th><th>target req/s</th><th>achieved req/s</th><th>burstiness</th><th>concurrency</th><th>scheduled</th><th>sent</th><th>dropped starts</th><th>warm-up requests</th><th>pacer lag p99 ms</th><th>pacer lag max ms</th></tr>
<tr><td>${escapeHtml(p.mode)}</td><td>${num(p.targetRps, 2)}</td><td>${num(p.achievedRps, 2)}</td><td>${num(p.burstiness, 2)}</td><td>${p.concurrency}</td><td>${p.scheduled}</td><td>${p.sent}</td><td>${p.droppedStarts}</td><td>${p.warmupRequests}</td><td>${num(p.lagP99Ms, 2)}</td><td>${num(p.lagMaxMs, 2)}</td></tr></table>
${warnings}

<h2>Request</h2>
<pre><code>${escapeHtml(JSON.stringify(report.request, null, 2))}</code></pre>
<script type="application/json" id="report-data">${scriptJson({ cdf: r.cdf, timeline: r.timeline })}</script>
`;

  const script = `
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var colors = { ttft: '#0969da', tpot: '#8250df', itl: '#bf8700', e2e: '#cf222e' };
  var labels = { ttft: 'TTFT', tpot: 'TPOT', itl: 'ITL', e2e: 'E2E' };
  var cdfSets = Object.keys(data.cdf).map(function (k) {
    return { label: labels[k] || k, data: data.cdf[k].map(function (p) { return { x: Math.max(p[0], 0.001), y: p[1] * 100 }; }),
             borderColor: colors[k], backgroundColor: colors[k], pointRadius: 0, borderWidth: 2, stepped: true };
  });
  new Chart(document.getElementById('cdf'), { type: 'line', data: { datasets: cdfSets },
    options: { maintainAspectRatio: false, parsing: false, animation: false,
      scales: { x: { type: 'logarithmic', title: { display: true, text: 'latency (ms, log scale)' } },
                y: { min: 0, max: 100, title: { display: true, text: '% of requests at or under' } } } } });
  var t = data.timeline;
  var at = function (key) { return t.filter(function (b) { return b[key] !== undefined && b[key] !== null; }).map(function (b) { return { x: b.startSeconds, y: b[key] }; }); };
  new Chart(document.getElementById('latency-time'), { type: 'line',
    data: { datasets: [
      { label: 'TTFT p50', data: at('ttftP50Ms'), borderColor: '#54aeff', pointRadius: 1 },
      { label: 'TTFT p99', data: at('ttftP99Ms'), borderColor: '#0969da', pointRadius: 1 },
      { label: 'E2E p99', data: at('e2eP99Ms'), borderColor: '#cf222e', pointRadius: 1 } ] },
    options: { maintainAspectRatio: false, parsing: false, animation: false,
      scales: { x: { type: 'linear', title: { display: true, text: 'seconds (by scheduled send time)' } },
                y: { title: { display: true, text: 'ms' }, beginAtZero: true } } } });
  var width = t.length > 1 ? (t[1].startSeconds - t[0].startSeconds) : 1;
  new Chart(document.getElementById('throughput-time'), { type: 'line',
    data: { datasets: [
      { label: 'completed req/s', data: t.map(function (b) { return { x: b.startSeconds, y: b.completed / width }; }), borderColor: '#1a7f37', yAxisID: 'y', pointRadius: 1 },
      { label: 'errors/s', data: t.map(function (b) { return { x: b.startSeconds, y: b.errors / width }; }), borderColor: '#cf222e', yAxisID: 'y', pointRadius: 1 },
      { label: 'output tok/s', data: t.map(function (b) { return { x: b.startSeconds, y: b.outputTokens / width }; }), borderColor: '#8250df', yAxisID: 'tokens', pointRadius: 1 } ] },
    options: { maintainAspectRatio: false, parsing: false, animation: false,
      scales: { x: { type: 'linear', title: { display: true, text: 'seconds (by completion time)' } },
                y: { beginAtZero: true, title: { display: true, text: 'requests/s' } },
                tokens: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false }, title: { display: true, text: 'tokens/s' } } } } });
})();
`;
  return htmlPage({
    title: `Load test ${report.target.model} ${report.startedAt}`,
    body,
    script,
    withCharts: true,
  });
}
