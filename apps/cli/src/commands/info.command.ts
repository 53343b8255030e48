import type { Command } from 'commander';
import { describeEngines, initEngine } from '@lethe/engine';
import { PRESETS } from '@lethe/model';
import { action } from '../terminal/errors';
import { engineSummary } from '../terminal/engine';

export function registerInfoCommand(program: Command, version: string): void {
  program
    .command('info')
    .description('print the engine in use, the engines available, versions and model presets')
    .option('--json', 'print JSON on stdout', false)
    .action(
      action(async (flags: { json: boolean }) => {
        // This command prints the engine itself, with its reason: no separate engine line.
        const engine = await initEngine({ log: () => undefined });
        const engines = describeEngines();
        const presets = Object.values(PRESETS).map((p) => ({
          name: p.name,
          description: p.description,
        }));
        if (flags.json) {
          const info = {
            lethe: version,
            node: process.versions.node,
            platform: `${process.platform}-${process.arch}`,
            engine,
            engines,
            presets,
          };
          process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
          return;
        }
        console.log(
          `lethe ${version} on Node.js ${process.versions.node} (${process.platform}-${process.arch})`,
        );
        console.log(
          `engine: ${engineSummary(engine)}, backend ${engine.backend}: ${engine.reason}`,
        );
        for (const [name, v] of Object.entries(engine.versions)) console.log(`  ${name} ${v}`);
        console.log('engines:');
        for (const e of engines) {
          const state = e.selected ? 'selected' : e.installed ? 'installed' : 'not installed';
          console.log(
            `  ${e.engine.padEnd(5)} ${state.padEnd(13)} ${e.package}${e.version ? ` ${e.version}` : ''} — ${e.note}`,
          );
        }
        console.log('presets:');
        for (const p of presets) console.log(`  ${p.name.padEnd(7)} ${p.description}`);
      }),
    );
}
