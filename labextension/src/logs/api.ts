// The log's call: a job's log streamed as NDJSON.
import { followStream } from '../api/request';
import type { LogChunk, LogEnd } from '../api/types';

/** The job's log as it is written: chunks, then (following) the final status; null if the
 * stream closed before the job ended. */
export async function followLogs(
  id: string,
  offset: number,
  onChunk: (chunk: LogChunk) => void,
  signal: AbortSignal
): Promise<LogEnd | null> {
  return followStream<LogChunk>(['jobs', id, 'logs'], `?offset=${offset}&follow=true`, c => 'text' in c, onChunk, signal);
}

/** The job's log as it was written (both streams, escape codes and all), for a download. */
export async function logText(id: string): Promise<string> {
  const parts: string[] = [];
  const controller = new AbortController();
  await followStream<LogChunk>(['jobs', id, 'logs'], '?offset=0', c => 'text' in c, c => parts.push(c.text), controller.signal);
  return parts.join('');
}
