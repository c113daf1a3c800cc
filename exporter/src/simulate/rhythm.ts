// When traffic happens: a diurnal curve (quiet at night, busiest in the afternoon, UTC), a
// weekly one (weekends at 40 %), and incidents: upstream overload (529) and per-tenant rate
// limiting (429) in bursts. Deterministic for a seed, so a history and the live traffic
// after it agree on when the incidents were.
import { seeded } from './random.ts';

const HOUR = 3_600_000;

/** Relative traffic at `t` (epoch ms), averaging about 1 over a week. */
export function intensity(t: number): number {
  const date = new Date(t);
  const hour = date.getUTCHours() + date.getUTCMinutes() / 60;
  // Lowest around 03:00, highest around 15:00.
  const daily = 1 + 0.75 * Math.sin(((hour - 9) / 24) * 2 * Math.PI);
  const day = date.getUTCDay();
  const weekly = day === 0 || day === 6 ? 0.4 : 1.15;
  return daily * weekly;
}

export interface Incident {
  kind: 'overloaded' | 'rate_limited';
  start: number;
  end: number;
  /** Share of requests failing while it lasts. */
  share: number;
  /** rate_limited: the tenant index affected. */
  tenant?: number;
}

/**
 * Incidents of the hour that holds `t`: one hour in 20 has an upstream overload of 5 to 20
 * minutes, one in 12 a tenant hitting its rate limit for 2 to 10 minutes.
 */
export function incidentsAt(t: number, seed: number, tenants: number): Incident[] {
  const hourStart = Math.floor(t / HOUR) * HOUR;
  const rnd = seeded((seed * 2654435761) ^ (hourStart / HOUR));
  const out: Incident[] = [];
  if (rnd() < 1 / 20) {
    const start = hourStart + rnd() * 40 * 60_000;
    out.push({ kind: 'overloaded', start, end: start + (5 + rnd() * 15) * 60_000, share: 0.15 + rnd() * 0.25 });
  }
  if (rnd() < 1 / 12) {
    const start = hourStart + rnd() * 50 * 60_000;
    out.push({ kind: 'rate_limited', start, end: start + (2 + rnd() * 8) * 60_000, share: 0.3 + rnd() * 0.5, tenant: Math.floor(rnd() * Math.min(tenants, 4)) });
  }
  return out.filter((i) => t >= i.start && t < i.end);
}
