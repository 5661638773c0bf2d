import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { outputFolder, writeOutputs } from '../../src/stages/write.js';
import { sampleReport } from '../sample-report.js';

const scratch = () => mkdtemp(path.join(os.tmpdir(), 'distill-gate-write-'));

describe('writeOutputs', () => {
  it('makes the folder and its parents, and writes report.json and report.md', async () => {
    const out = path.join(await scratch(), 'a/b');
    expect(await writeOutputs(undefined, undefined, out, sampleReport(), '# report\n')).toBeUndefined();
    expect(JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'))).toEqual(sampleReport());
    expect(await readFile(path.join(out, 'report.md'), 'utf8')).toBe('# report\n');
  });

  it('gives back an InputError naming a file where the folder should be, instead of throwing', async () => {
    const file = path.join(await scratch(), 'out');
    await writeFile(file, 'x');
    const error = await writeOutputs(undefined, undefined, file, sampleReport(), '');
    expect(error).toBeInstanceOf(InputError);
    expect(error!.message).toBe(
      `${file}: is a file, not a folder: name a folder for the output (it is made when missing), or remove the file.`,
    );
    await expect(outputFolder(file)).rejects.toThrow(/is a file, not a folder/);
  });

  it.each(['report.json', 'report.md'])(
    'refuses %s as a symbolic link, leaving what it points at alone',
    async (name) => {
      const dir = await scratch();
      const out = path.join(dir, 'out');
      await mkdir(out);
      const target = path.join(dir, 'elsewhere');
      await writeFile(target, 'keep me');
      await symlink(target, path.join(out, name));
      const error = await writeOutputs(undefined, undefined, out, sampleReport(), '# report\n');
      expect(error?.message).toBe(
        `${path.join(out, name)}: is a symbolic link; distill-gate never writes through a link in its output folder. Remove the link, or name another output folder.`,
      );
      expect(await readFile(target, 'utf8')).toBe('keep me');
    },
  );
});
