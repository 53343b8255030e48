import { SingleBar } from 'cli-progress';
import type { StepProgress } from '@lethe/model';
import { percent } from './tables';

export interface ProgressValues {
  [key: string]: string | number;
}

/**
 * A progress bar on a terminal; on anything else (CI logs, pipes) one plain line every
 * `everySeconds`, so logs stay readable and still show that work is moving.
 */
export class Progress {
  private readonly bar: SingleBar | undefined;
  private lastLine = 0;

  constructor(
    format: string,
    private readonly plain: (values: ProgressValues, value: number, total: number) => string,
    private readonly everySeconds = 10,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    if (stream.isTTY) {
      this.bar = new SingleBar({
        format,
        stream,
        barsize: 24,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      });
    }
  }

  start(total: number, values: ProgressValues): void {
    this.bar?.start(total, 0, values);
  }

  update(value: number, total: number, values: ProgressValues): void {
    if (this.bar) {
      this.bar.setTotal(total);
      this.bar.update(value, values);
      return;
    }
    const now = Date.now();
    if (now - this.lastLine >= this.everySeconds * 1000 || value === total) {
      this.lastLine = now;
      this.stream.write(`${this.plain(values, value, total)}\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}

export interface StepReporter {
  onStep: (p: StepProgress) => void;
  stop: () => void;
}

/** Progress of a training or retraining run: epoch, step, loss, accuracy, images/s, ETA. */
export function stepProgress(label: string, everySeconds = 10): StepReporter {
  const progress = new Progress(
    `${label} epoch {epoch}/{epochs} |{bar}| {value}/{total} steps | loss {loss} | acc {acc} | {ips} img/s | ETA {eta_formatted}`,
    (v, value, total) =>
      `${label} epoch ${v['epoch']}/${v['epochs']} step ${value}/${total} loss ${v['loss']} acc ${v['acc']} ${v['ips']} img/s`,
    everySeconds,
  );
  let started = false;
  return {
    onStep: (p) => {
      const values = {
        epoch: p.epoch + 1,
        epochs: Math.ceil(p.totalSteps / p.stepsPerEpoch),
        loss: p.loss.toFixed(3),
        acc: percent(p.accuracy),
        ips: Math.round(p.imagesPerSecond),
      };
      if (!started) progress.start(p.totalSteps, values);
      started = true;
      progress.update(p.globalStep, p.totalSteps, values);
    },
    stop: () => progress.stop(),
  };
}

/** Progress of decoding an image folder: one bar per split. */
export function decodeProgress(): {
  update: (split: string, done: number, total: number) => void;
  stop: () => void;
} {
  let current: { split: string; bar: Progress } | undefined;
  return {
    update: (split, done, total) => {
      if (current?.split !== split) {
        current?.bar.stop();
        current = {
          split,
          bar: new Progress(
            'decoding {split} |{bar}| {value}/{total} images | ETA {eta_formatted}',
            (v, value, all) => `decoding ${v['split']} ${value}/${all} images`,
          ),
        };
        current.bar.start(total, { split });
      }
      current.bar.update(done, total, { split });
    },
    stop: () => {
      current?.bar.stop();
      current = undefined;
    },
  };
}
