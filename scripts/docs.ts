/**
 * Regenerates the reference tables in README.md from the code that defines them: resize options
 * (src/worker/option_docs.ts), error codes (src/errors/codes.ts) and settings
 * (src/config/schema.ts). `npm run docs` writes them; the docs test fails when README drifts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describeSettings } from '../src/config/index.ts';
import { errorCodes } from '../src/errors/index.ts';
import { resizeOptionDocs } from '../src/worker/index.ts';

export const readmePath = fileURLToPath(new URL('../README.md', import.meta.url));

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function generatedSections(): Record<string, string> {
  const options = [
    '| parameter | type | default | allowed | meaning |',
    '|---|---|---|---|---|',
    ...resizeOptionDocs.map(
      (doc) =>
        `| \`${doc.name}\` | ${doc.type} | ${escapeCell(doc.default)} | ${escapeCell(doc.allowed)} | ${escapeCell(doc.description)} |`,
    ),
  ].join('\n');
  const errors = [
    '| code | HTTP status | meaning |',
    '|---|---|---|',
    ...Object.entries(errorCodes)
      .filter(([code]) => code !== 'PF_ERR_CONFIG')
      .map(([code, { status, title }]) => `| \`${code}\` | ${status} | ${escapeCell(title)} |`),
  ].join('\n');
  return { options, errors, settings: describeSettings() };
}

export function renderReadme(current: string): string {
  let text = current;
  for (const [name, body] of Object.entries(generatedSections())) {
    const pattern = new RegExp(`(<!-- generated:${name} -->\\n)[\\s\\S]*?(<!-- /generated:${name} -->)`);
    if (!pattern.test(text)) throw new Error(`README.md lacks the <!-- generated:${name} --> markers`);
    text = text.replace(pattern, (_match, open: string, close: string) => `${open}${body}\n${close}`);
  }
  return text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const current = readFileSync(readmePath, 'utf8');
  const next = renderReadme(current);
  if (next !== current) writeFileSync(readmePath, next);
  console.log(next === current ? 'README.md is up to date' : 'README.md updated');
}
