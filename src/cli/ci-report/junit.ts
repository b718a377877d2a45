import { formatStatistics } from '../../domain/analysis.js';
import {
  analysesOf,
  analysisName,
  type CiReport,
  durationSeconds,
  gateStages,
  releaseSeconds,
} from './report.js';

// JUnit XML for CI test reports: one test case per canary analysis step and one per gate
// (claim of the service lease, load test, approvals, promote), failures carrying the reason.

/** XML 1.0's Char production: tab, LF, CR, and the rest of Unicode but C0 controls, lone surrogates and FFFE/FFFF. */
function isXmlChar(c: number): boolean {
  return (
    c === 0x9 ||
    c === 0xa ||
    c === 0xd ||
    (c >= 0x20 && c <= 0xd7ff) ||
    (c >= 0xe000 && c <= 0xfffd) ||
    (c >= 0x10000 && c <= 0x10ffff)
  );
}

function xmlChars(text: string): string {
  let out = '';
  // for...of walks code points: a lone surrogate comes out on its own and is replaced.
  for (const ch of text) out += isXmlChar(ch.codePointAt(0) ?? 0) ? ch : '\uFFFD';
  return out;
}

/** Escapes text for an XML attribute or element, dropping characters XML cannot carry. */
export function xmlEscape(text: string): string {
  return xmlChars(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/\r/g, '&#13;')
    .replace(/\n/g, '&#10;')
    .replace(/\t/g, '&#9;');
}

/** Element text: like attributes, but newlines stay readable. */
function xmlText(text: string): string {
  return xmlEscape(text).replace(/&#10;/g, '\n').replace(/&#9;/g, '\t');
}

interface Case {
  name: string;
  classname: string;
  seconds: number;
  failure?: { message: string; type: string; text: string };
  skipped?: string;
  out?: string;
}

function renderCase(c: Case): string {
  const head = `    <testcase name="${xmlEscape(c.name)}" classname="${xmlEscape(c.classname)}" time="${c.seconds.toFixed(3)}"`;
  const body: string[] = [];
  if (c.failure) {
    body.push(
      `      <failure message="${xmlEscape(c.failure.message)}" type="${xmlEscape(c.failure.type)}">${xmlText(c.failure.text)}</failure>`,
    );
  }
  if (c.skipped !== undefined) body.push(`      <skipped message="${xmlEscape(c.skipped)}"/>`);
  if (c.out) body.push(`      <system-out>${xmlText(c.out)}</system-out>`);
  return body.length === 0 ? `${head}/>` : `${head}>\n${body.join('\n')}\n    </testcase>`;
}

function renderSuite(name: string, cases: Case[]): string {
  const failures = cases.filter((c) => c.failure).length;
  const skipped = cases.filter((c) => c.skipped !== undefined).length;
  const seconds = cases.reduce((sum, c) => sum + c.seconds, 0);
  return [
    `  <testsuite name="${xmlEscape(name)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${seconds.toFixed(3)}">`,
    ...cases.map(renderCase),
    '  </testsuite>',
  ].join('\n');
}

export function renderJunit(report: CiReport): string {
  const id = report.workflowId;
  const analysisCases: Case[] = analysesOf(report).map((a) => {
    const checks = a.checks.map(
      (c) =>
        `${c.metric}: ${c.verdict} (${c.message})${c.statistics ? ` ${formatStatistics(c.statistics)}` : ''}`,
    );
    const c: Case = {
      name: analysisName(a),
      classname: `${id}.analysis`,
      seconds: durationSeconds(a.startedAt, a.finishedAt),
      out: checks.join('\n'),
    };
    const headline = a.reasons[0] ?? a.verdict;
    if (a.verdict === 'fail') {
      c.failure = {
        message: headline,
        type: 'AnalysisFailed',
        text: [...a.reasons, '', ...checks].join('\n'),
      };
    } else if (a.verdict === 'inconclusive') {
      c.skipped = `inconclusive: ${headline}`;
    }
    return c;
  });
  const gateCases: Case[] = gateStages(report.status).map((s) => {
    const c: Case = {
      name: s.name,
      classname: `${id}.gate`,
      seconds: durationSeconds(s.startedAt, s.finishedAt),
    };
    if (s.detail) c.out = s.detail;
    if (s.state === 'failed') {
      const message = s.detail ?? report.reason ?? `${s.name} failed`;
      c.failure = { message, type: report.failureType ?? 'GateFailed', text: message };
    } else if (s.state === 'pending' || s.state === 'skipped' || s.state === 'compensated') {
      c.skipped = s.state === 'pending' ? 'not reached' : s.state;
    } else if (s.state === 'running' || s.state === 'waiting') {
      c.skipped = `still ${s.state} when the CLI stopped waiting`;
    }
    return c;
  });
  // The release itself: its outcome, so a failure without a failed gate (an error, a
  // cancellation) still shows in the report.
  const release: Case = {
    name: 'release outcome',
    classname: `${id}.release`,
    seconds: releaseSeconds(report),
    out: [
      `outcome: ${report.outcome}`,
      report.status?.reportUri ? `report: ${report.status.reportUri}` : '',
      report.uiUrl ? `UI: ${report.uiUrl}` : '',
    ]
      .filter(Boolean)
      .join('\n'),
  };
  if (report.outcome === 'running') {
    release.skipped = `the CI job was cancelled (${report.cancelled ?? 'detached'}) before the release ended`;
  } else if (report.outcome !== 'promoted') {
    const message = `${report.outcome}${report.reason ? `: ${report.reason}` : ''}`;
    release.failure = { message, type: report.failureType ?? report.outcome, text: message };
  }
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${xmlEscape(`qwenops canary ${id}`)}">`,
    renderSuite(`${id} analyses`, analysisCases),
    renderSuite(`${id} gates`, [...gateCases, release]),
    '</testsuites>',
    '',
  ].join('\n');
}
