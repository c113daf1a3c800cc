import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['*.test.ts', 'exporter/**/*.test.ts', 'dashboards/**/*.test.ts', 'clickhouse/**/*.test.ts', 'collector/**/*.test.ts', 'scripts/**/*.test.ts'],
    globalSetup: ['exporter/src/testing/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: test files share one PostgreSQL cluster; a few at a time keeps timing sane.
    maxWorkers: 2,
    reporters: ['default', './exporter/src/testing/summary-reporter.ts'],
  },
});
