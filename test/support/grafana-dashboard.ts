import { readFileSync } from 'node:fs';
import path from 'node:path';
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import type * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import ts from 'typescript';
import { z } from 'zod';
import { repoRoot } from '../../src/runtime/entrypoints.js';

// Checks of a Grafana dashboard JSON model without Grafana (whose licence keeps it out of
// this repository). Grafana publishes no standalone JSON Schema of the classic dashboard
// model on npm; the Grafana Foundation SDK (@grafana/grafana-foundation-sdk, Apache-2.0,
// generated from Grafana's own CUE schemas, schemaVersion 42) publishes it as TypeScript
// types. So the dashboard is checked twice:
// 1. typeCheckDashboard: the JSON, as an object literal, must satisfy the SDK's
//    dashboard.Dashboard with Prometheus queries (prometheus.Dataquery) in its panels, under
//    the TypeScript compiler (excess property checks included: a misspelt field fails);
// 2. dashboardStructure (zod): what Grafana needs to load and run it that the types leave
//    optional: uid, title, schemaVersion, unique panel ids, a gridPos inside the 24-column
//    grid, targets with expr and a refId unique in their panel, every Prometheus datasource
//    reference on the ${datasource} template variable.

/** The JSON form of an SDK type: string enums as their values, marker methods dropped. */
export type Jsonified<T> = 0 extends 1 & T
  ? unknown
  : T extends (...args: never[]) => unknown
    ? never
    : T extends string
      ? `${T}`
      : T extends number
        ? `${T}` extends `${infer N extends number}`
          ? N
          : number
        : T extends readonly (infer U)[]
          ? Jsonified<U>[]
          : T extends object
            ? { [K in keyof T as T[K] extends (...args: never[]) => unknown ? never : K]: Jsonified<T[K]> }
            : T;

/** A panel whose queries are Prometheus queries. */
export type PrometheusPanelJson = Omit<Jsonified<dashboard.Panel>, 'targets'> & {
  targets?: Jsonified<prometheus.Dataquery>[];
};

/** The classic dashboard JSON model (what Grafana imports and the sidecar loads). */
export type GrafanaDashboardJson = Omit<Jsonified<dashboard.Dashboard>, 'panels'> & {
  panels?: (PrometheusPanelJson | Jsonified<dashboard.RowPanel>)[];
};

/**
 * Type-checks `json` (the dashboard's parsed JSON) against GrafanaDashboardJson with the
 * TypeScript compiler; returns the diagnostics, formatted (none: it conforms).
 */
export function typeCheckDashboard(json: unknown): string[] {
  // A virtual module next to this one, so that the SDK resolves from node_modules.
  const fileName = path.join(repoRoot, 'test', 'support', '__dashboard_typecheck__.ts');
  const source = [
    "import type { GrafanaDashboardJson } from './grafana-dashboard.js';",
    `export const dashboard = ${JSON.stringify(json, null, 2)} satisfies GrafanaDashboardJson;`,
    '',
  ].join('\n');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.fileExists = (f) => f === fileName || fileExists(f);
  host.readFile = (f) => (f === fileName ? source : readFile(f));
  host.getSourceFile = (f, languageVersion, ...rest) =>
    f === fileName
      ? ts.createSourceFile(f, source, languageVersion, true)
      : getSourceFile(f, languageVersion, ...rest);
  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return message;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${path.relative(repoRoot, d.file.fileName)}:${line + 1}:${character + 1}: ${message}`;
  });
}

/** Grafana's own syntax for the datasource variable (not a JS template). */
const DATASOURCE_VARIABLE_UID = ['$', '{datasource}'].join('');
const datasourceRef = z
  .object({ type: z.literal('prometheus'), uid: z.literal(DATASOURCE_VARIABLE_UID) })
  .strict();

const gridPos = z
  .object({
    h: z.number().int().positive(),
    w: z.number().int().min(1).max(24),
    x: z.number().int().min(0).max(23),
    y: z.number().int().min(0),
  })
  .refine((g) => g.x + g.w <= 24, 'the panel leaves the 24-column grid');

const target = z.object({
  refId: z.string().regex(/^[A-Z]$/),
  expr: z.string().min(1),
  datasource: datasourceRef.optional(),
});

const panel = z
  .object({
    id: z.number().int().positive(),
    type: z.string().min(1),
    title: z.string().min(1),
    gridPos,
    datasource: datasourceRef,
    targets: z.array(target).min(1),
  })
  .refine((p) => new Set(p.targets.map((t) => t.refId)).size === p.targets.length, 'duplicate refId');

const row = z.object({
  id: z.number().int().positive(),
  type: z.literal('row'),
  title: z.string().min(1),
  gridPos,
  collapsed: z.literal(false),
  panels: z.array(z.unknown()).length(0),
});

const variable = z.discriminatedUnion('type', [
  z.object({ type: z.literal('datasource'), name: z.literal('datasource'), query: z.literal('prometheus') }),
  z.object({
    type: z.literal('query'),
    name: z.string().regex(/^\w+$/),
    datasource: datasourceRef,
    definition: z.string().min(1),
    query: z.object({ query: z.string().min(1) }),
  }),
]);

export const dashboardStructure = z
  .object({
    uid: z
      .string()
      .min(1)
      .max(40)
      .regex(/^[a-zA-Z0-9_-]+$/),
    title: z.string().min(1),
    schemaVersion: z.number().int().min(36),
    // An id would tie the JSON to one Grafana instance's database.
    id: z.null().optional(),
    time: z.object({ from: z.string(), to: z.string() }),
    templating: z.object({ list: z.array(variable) }),
    annotations: z.object({ list: z.array(z.unknown()) }),
    panels: z.array(z.union([row, panel])).min(1),
  })
  .refine((d) => new Set(d.panels.map((p) => p.id)).size === d.panels.length, 'duplicate panel id')
  .refine(
    (d) => d.templating.list.some((v) => v.type === 'datasource' && v.name === 'datasource'),
    'no datasource template variable',
  )
  .refine((d) => {
    // Panels never overlap: each grid cell belongs to one panel.
    const cells = new Set<string>();
    for (const { gridPos: g } of d.panels) {
      for (let y = g.y; y < g.y + g.h; y++) {
        for (let x = g.x; x < g.x + g.w; x++) {
          if (cells.has(`${x},${y}`)) return false;
          cells.add(`${x},${y}`);
        }
      }
    }
    return true;
  }, 'panels overlap');

export type DashboardStructure = z.infer<typeof dashboardStructure>;

export const DASHBOARD_PATH = path.join(repoRoot, 'k8s', 'observability', 'qwen-serving-dashboard.json');

export function readDashboard(file = DASHBOARD_PATH): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

export interface PanelQuery {
  panelId: number;
  panel: string;
  refId: string;
  expr: string;
}

/** Every query of every (non-row) panel. */
export function panelQueries(d: DashboardStructure): PanelQuery[] {
  return d.panels.flatMap((p) =>
    'targets' in p
      ? p.targets.map((t) => ({ panelId: p.id, panel: p.title, refId: t.refId, expr: t.expr }))
      : [],
  );
}

/** The template variables' queries (label_values(...)). */
export function variableQueries(d: DashboardStructure): { name: string; query: string }[] {
  return d.templating.list.flatMap((v) =>
    v.type === 'query' ? [{ name: v.name, query: v.query.query }] : [],
  );
}

/**
 * What Grafana sends Prometheus for `expr`: $var / ${var} replaced by `values` (regex
 * matchers, so a multi-value is (a|b)), plus $__rate_interval, $__interval and $__range.
 * An unknown variable throws.
 */
export function interpolate(
  expr: string,
  values: Record<string, string>,
  builtins: { rateInterval: string; range: string },
): string {
  const all: Record<string, string> = {
    ...values,
    __rate_interval: builtins.rateInterval,
    __interval: builtins.rateInterval,
    __range: builtins.range,
  };
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare) as string;
    const value = all[name];
    if (value === undefined) throw new Error(`unknown template variable $${name} in ${expr}`);
    return value;
  });
}
