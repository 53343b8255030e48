import type { Command } from 'commander';
import { describeEngines, initEngine } from '@lethe/engine';
import { PRESETS } from '@lethe/model';
import { action } from '../terminal/errors';

export function registerInfoCommand(program: Command, version: string): void {
  program
    .command('info')
    .description('print the engine in use, the engines available, versions and model presets')
    .action(
      action(async () => {
        const engine = await initEngine({ log: () => undefined });
        console.log(
          `lethe ${version} on Node.js ${process.versions.node} (${process.platform}-${process.arch})`,
        );
        console.log(`engine: ${engine.engine} (backend ${engine.backend}): ${engine.reason}`);
        for (const [name, v] of Object.entries(engine.versions)) console.log(`  ${name} ${v}`);
        console.log('engines:');
        for (const e of describeEngines()) {
          const state = e.selected ? 'selected' : e.installed ? 'installed' : 'not installed';
          console.log(
            `  ${e.engine.padEnd(5)} ${state.padEnd(13)} ${e.package}${e.version ? ` ${e.version}` : ''} — ${e.note}`,
          );
        }
        console.log('presets:');
        for (const p of Object.values(PRESETS))
          console.log(`  ${p.name.padEnd(7)} ${p.description}`);
      }),
    );
}
