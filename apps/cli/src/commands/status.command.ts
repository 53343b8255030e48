import type { Command } from 'commander';
import {
  Job,
  ListExpertsResponse,
  ListWorkersResponse,
  WorkerState,
  type CoordinatorClient,
} from '@lethe/proto';
import { status as grpcStatus } from '@grpc/grpc-js';
import { callUnary, isServiceError, withCoordinator } from '../remote/grpc';
import { expertsTable, jobsTable, workersTable } from '../remote/format';
import { readJobLog } from '../remote/job-log';
import { type ConnectionFlags, statusCoordinator, withConnectionOptions } from '../remote/target';
import { action } from '../terminal/errors';

/** The jobs this directory submitted to `address` that the coordinator still knows, newest first. */
async function knownJobs(client: CoordinatorClient, address: string): Promise<Job[]> {
  const logged = readJobLog()
    .filter((j) => j.coordinator === address)
    .reverse();
  const jobs: Job[] = [];
  for (const { jobId } of logged) {
    try {
      jobs.push(await callUnary(client, client.getJob, { jobId }));
    } catch (error) {
      // A coordinator restarted on a fresh database no longer knows old jobs.
      if (!(isServiceError(error) && error.code === grpcStatus.NOT_FOUND)) throw error;
    }
  }
  return jobs;
}

export function registerStatusCommand(program: Command): void {
  const registered = program
    .command('status')
    .description(
      "a coordinator's workers, experts and the jobs started from this directory (default: the cluster that lethe up started here)",
    )
    .option(
      '--coordinator <host:port>',
      'coordinator address (default: LETHE_COORDINATOR, then .lethe/cluster.json)',
    )
    .option('--json', 'print JSON on stdout', false)
    .action(
      action(async (flags: { coordinator?: string; json: boolean } & ConnectionFlags) => {
        const target = statusCoordinator(flags.coordinator, process.cwd(), flags);
        await withCoordinator(target, async (client) => {
          const [workers, experts] = await Promise.all([
            callUnary(client, client.listWorkers, {}),
            callUnary(client, client.listExperts, {}),
          ]);
          const jobs = await knownJobs(client, target.address);
          if (flags.json) {
            process.stdout.write(
              `${JSON.stringify(
                {
                  coordinator: target.address,
                  workers: ListWorkersResponse.toJSON(workers),
                  experts: ListExpertsResponse.toJSON(experts),
                  jobs: jobs.map((j) => Job.toJSON(j)),
                },
                null,
                2,
              )}\n`,
            );
            return;
          }
          const alive = workers.workers.filter(
            (w) => w.state === WorkerState.WORKER_STATE_ALIVE,
          ).length;
          console.log(
            `coordinator ${target.address}` +
              (target.source === '--coordinator' ? '' : ` (from ${target.source})`),
          );
          console.log(
            experts.manifestRevision === 0
              ? 'model: none trained yet'
              : `model: manifest revision ${experts.manifestRevision}, ${experts.experts.length} experts`,
          );
          console.log(`\nworkers: ${alive} alive of ${workers.workers.length}`);
          if (workers.workers.length > 0) console.log(workersTable(workers.workers));
          if (experts.experts.length > 0) {
            console.log('\nexperts:');
            console.log(expertsTable(experts.experts));
          }
          console.log(
            jobs.length === 0
              ? '\njobs: none started from this directory'
              : '\njobs started from this directory:',
          );
          if (jobs.length > 0) console.log(jobsTable(jobs));
        });
      }),
    );
  withConnectionOptions(registered);
}
