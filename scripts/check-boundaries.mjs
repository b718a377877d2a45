#!/usr/bin/env node
// The layering rules, enforced by `make lint`:
// - workflows/ import only @temporalio/workflow (and @temporalio/common), their own folder, src/domain, and
//   activity types (type-only imports from activities/): the workflow sandbox must never
//   pull I/O code in, not even by accident through a value import.
// - src/domain/ imports only zod and itself: it is what workflows share with services.
// - src/ knows nothing of Temporal, except the Temporal adapters (src/temporal) and the CLI.
// Each violation is printed as file:line and the rule it breaks; the exit code is 1 if any.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// The repository root, or the one given as the first argument (tests check fixtures).
const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));

function tsFiles(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...tsFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Every import/export-from in a file: specifier, whether it is type-only, and its line. */
function importsOf(file) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found = [];
  const visit = (node) => {
    let specifier;
    let typeOnly = false;
    if (ts.isImportDeclaration(node)) {
      specifier = node.moduleSpecifier;
      const clause = node.importClause;
      typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      specifier = node.moduleSpecifier;
      typeOnly = node.isTypeOnly;
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      specifier = node.arguments[0];
    }
    if (specifier && ts.isStringLiteral(specifier)) {
      const { line } = source.getLineAndCharacterOfPosition(node.getStart());
      found.push({ spec: specifier.text, typeOnly, line: line + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The repository-relative path a relative specifier points at, or undefined for a package. */
function target(file, spec) {
  if (!spec.startsWith('.')) return undefined;
  return relative(root, resolve(dirname(file), spec))
    .split(sep)
    .join('/');
}

const rules = [
  {
    name: 'workflows import only @temporalio/workflow (and @temporalio/common, which it re-exports), workflows/, src/domain/ and activity types',
    files: tsFiles(join(root, 'workflows')),
    allowed(file, { spec, typeOnly }) {
      // @temporalio/common is the deterministic half the SDK bundles into the workflow
      // sandbox itself; it holds defineSearchAttributeKey, which @temporalio/workflow lacks.
      if (spec === '@temporalio/workflow' || spec === '@temporalio/common') return true;
      const to = target(file, spec);
      if (to === undefined) return false;
      if (to.startsWith('workflows/') || to.startsWith('src/domain/')) return true;
      return typeOnly && to.startsWith('activities/');
    },
  },
  {
    name: 'src/domain imports only zod and src/domain/',
    files: tsFiles(join(root, 'src', 'domain')),
    allowed(file, { spec }) {
      if (spec === 'zod') return true;
      return target(file, spec)?.startsWith('src/domain/') ?? false;
    },
  },
  {
    name: 'src/ (outside src/temporal and src/cli) does not import Temporal',
    files: tsFiles(join(root, 'src')).filter((f) => {
      const rel = relative(root, f).split(sep).join('/');
      return !rel.startsWith('src/temporal/') && !rel.startsWith('src/cli/');
    }),
    allowed(_file, { spec }) {
      return !spec.startsWith('@temporalio/');
    },
  },
];

let violations = 0;
for (const rule of rules) {
  for (const file of rule.files) {
    for (const imp of importsOf(file)) {
      if (rule.allowed(file, imp)) continue;
      violations++;
      const where = `${relative(root, file)}:${imp.line}`;
      console.error(`${where}: imports '${imp.spec}'${imp.typeOnly ? ' (type-only)' : ''}: ${rule.name}`);
    }
  }
}
if (violations > 0) {
  console.error(`[lint] boundaries: ${violations} import(s) break the layering rules`);
  process.exit(1);
}
console.log(
  `[lint] boundaries: ${rules.reduce((n, r) => n + r.files.length, 0)} files checked, layering holds`,
);
