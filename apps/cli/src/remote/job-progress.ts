import type { JobEvent, JobProgress } from '@lethe/proto';
import { Progress } from '../terminal/progress';
import { percent } from '../terminal/tables';
import { isTerminal, jobStateName } from './grpc';

export interface JobReporter {
  onEvent: (event: JobEvent) => void;
  stop: () => void;
}

/**
 * Shows a watched job on stderr: one line per state change, the coordinator's log lines for the
 * job (what a local run prints as it goes, warnings included), and per phase (`train`, `plan`,
 * `forget`, `measure`, ...) a progress bar of epoch, step, loss, accuracy, images/s and ETA on a
 * terminal, or a plain line every `everySeconds` elsewhere.
 */
export function jobProgress(everySeconds = 10): JobReporter {
  let current: { phase: string; bar: Progress | undefined } | undefined;
  const stopBar = (): void => {
    current?.bar?.stop();
  };
  const onProgress = (p: JobProgress): void => {
    if (current?.phase !== p.phase) {
      stopBar();
      const bar =
        p.totalSteps > 0
          ? new Progress(
              `${p.phase} epoch {epoch}/{epochs} |{bar}| {value}/{total} steps | loss {loss} | acc {acc} | {ips} img/s | ETA {eta_formatted}`,
              (v, value, total) =>
                `${p.phase} epoch ${v['epoch']}/${v['epochs']} step ${value}/${total} loss ${v['loss']} acc ${v['acc']} ${v['ips']} img/s`,
              everySeconds,
            )
          : undefined;
      if (!bar) process.stderr.write(`${p.phase}…\n`);
      current = { phase: p.phase, bar };
      bar?.start(p.totalSteps, values(p));
    }
    current.bar?.update(p.globalStep, p.totalSteps, values(p));
  };
  return {
    onEvent: (event) => {
      const e = event.event;
      if (e?.$case === 'progress') onProgress(e.value);
      else if (e?.$case === 'status') {
        stopBar();
        current = undefined;
        const job = e.value.job;
        process.stderr.write(
          `job ${event.jobId}: ${jobStateName(e.value.state)}${job?.error ? ` — ${job.error}` : ''}\n`,
        );
        if (job?.progress && !isTerminal(e.value.state)) onProgress(job.progress);
      } else if (e?.$case === 'log') {
        stopBar();
        current = undefined;
        process.stderr.write(`${e.value.source}: ${e.value.text}\n`);
      }
    },
    stop: stopBar,
  };
}

const values = (p: JobProgress): Record<string, string | number> => ({
  epoch: p.epoch,
  epochs: p.epochs,
  loss: p.loss.toFixed(3),
  acc: percent(p.accuracy),
  ips: Math.round(p.imagesPerSecond),
});
