// Every dashboard, with the folder it is provisioned into. Adding a dashboard: one module
// beside this file and one line here.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import type { MonitoringConfig } from './config.ts';
import { overview } from './overview.ts';
import { tenantDetail } from './tenant-detail.ts';
import { conversationList, conversationThread } from './conversations.ts';
import { agentsQuotas } from './agents-quotas.ts';
import { systemHealth } from './system-health.ts';

export interface DashboardEntry {
  folder: string;
  build(): Dashboard;
}

export function dashboards(config: MonitoringConfig): DashboardEntry[] {
  return [
    { folder: 'LLM traffic', build: () => overview(config).build() },
    { folder: 'LLM traffic', build: () => tenantDetail(config).build() },
    { folder: 'LLM traffic', build: () => conversationList(config).build() },
    { folder: 'LLM traffic', build: () => conversationThread(config).build() },
    { folder: 'Agents', build: () => agentsQuotas(config).build() },
    { folder: 'tokenwatch', build: () => systemHealth(config).build() },
  ];
}
