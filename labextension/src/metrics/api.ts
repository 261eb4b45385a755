// The metrics' calls: a job's series streamed as NDJSON, or every point so far page by page.
import { followStream, json } from '../api/request';
import type { LogEnd, MetricsPage } from '../api/types';

/** The job's series as points arrive (pages after `since`), then the final status. */
export async function followMetrics(
  id: string,
  since: string,
  onPage: (page: MetricsPage) => void,
  signal: AbortSignal
): Promise<LogEnd | null> {
  const query = `?follow=true${since ? `&since=${encodeURIComponent(since)}` : ''}`;
  return followStream<MetricsPage>(['jobs', id, 'metrics'], query, p => 'series' in p, onPage, signal);
}

/** Every point of a job's series so far (page after page). */
export async function allMetrics(id: string, names: string[] = []): Promise<MetricsPage['series']> {
  const out: MetricsPage['series'] = {};
  let since = '';
  for (;;) {
    const query = new URLSearchParams({ ...(since ? { since } : {}), ...(names.length ? { names: names.join(',') } : {}) });
    const page = await json<MetricsPage>(['jobs', id, 'metrics'], {}, `?${query}`);
    for (const [name, s] of Object.entries(page.series)) {
      const into = (out[name] ??= { steps: [], values: [], times: [] as (number | null)[] });
      into.steps.push(...s.steps);
      into.values.push(...s.values);
      into.times!.push(...(s.times ?? s.steps.map(() => null)));
    }
    if (!page.more) {
      return out;
    }
    since = page.next;
  }
}
