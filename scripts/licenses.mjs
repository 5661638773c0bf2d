// Writes the licenses of every production dependency bundled into dist/ to the given file.
// ncc's own --license output keeps only the last chunk's list once the bundle has chunks.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const target = process.argv[2];
const dirs = execFileSync('npm', ['ls', '--omit=dev', '--omit=peer', '--all', '--parseable'], { encoding: 'utf8' })
  .trim()
  .split('\n')
  .slice(1);
const seen = new Set();
const sections = [];
for (const dir of dirs.sort()) {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  if (seen.has(manifest.name)) continue;
  seen.add(manifest.name);
  const licenseFile = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
  const text =
    licenseFile && existsSync(path.join(dir, licenseFile))
      ? readFileSync(path.join(dir, licenseFile), 'utf8').trim()
      : '';
  sections.push(`${manifest.name}\n${manifest.license ?? 'UNKNOWN'}${text ? `\n${text}` : ''}`);
}
writeFileSync(target, `${sections.join('\n\n')}\n`);
