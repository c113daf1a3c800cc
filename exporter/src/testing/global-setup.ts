// Vitest global setup: one throwaway PostgreSQL cluster for the whole test run. Test files
// create their own databases in it (testing/databases.ts), so they stay independent.
import type { TestProject } from 'vitest/node';
import { startPgCluster, type PgCluster } from './pg-cluster.ts';

let cluster: PgCluster | undefined;

export async function setup(project: TestProject): Promise<void> {
  cluster = await startPgCluster();
  project.provide('pgPort', cluster.port);
}

export async function teardown(): Promise<void> {
  await cluster?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgPort: number;
  }
}
