// Words the views share: a count with its noun ("1 line", "2 lines"), and why a job ended, said
// as a sentence rather than the server's enum (FailureReason in domain/status.py).
import { Job, Schemas } from '../api';

/** Nouns whose plural is not the singular and an "s". */
const PLURALS: Record<string, string> = { match: 'matches', entry: 'entries', index: 'indices' };

/** `n` and its noun, singular for exactly one: "1 line", "0 lines", "1,024 bytes". */
export function count(n: number, noun: string, plural?: string): string {
  return `${n.toLocaleString()} ${n === 1 ? noun : (plural ?? PLURALS[noun] ?? `${noun}s`)}`;
}

type Reason = Schemas['FailureReason'];

const REASONS: Record<Reason, string> = {
  exit_code: 'exited with an error',
  timeout: 'ran past its time limit',
  oom: 'ran out of memory',
  backend_error: 'its backend failed',
  lost: 'was lost (its process or container went away)',
  environment: 'its packages could not be installed',
  idle: 'its GPUs sat idle',
  output: 'an output it declares could not be kept'
};

/** Why the job ended, in words ("exited with code 3", "ran out of memory"); null when it
 * ended by itself or was cancelled (its status says it all). */
export function reasonWords(job: Pick<Job, 'reason' | 'exit_code'>): string | null {
  if (!job.reason) {
    return null;
  }
  if (job.reason === 'exit_code' && job.exit_code !== null && job.exit_code !== undefined) {
    return `exited with code ${job.exit_code}`;
  }
  return REASONS[job.reason] ?? job.reason.replace(/_/g, ' ');
}
