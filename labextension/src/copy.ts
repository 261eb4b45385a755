// A job's spec written out as something a user can paste: the %job magic, or curl.
import { PageConfig, URLExt } from '@jupyterlab/coreutils';

import { Spec } from './api';

const REDACTED = '********';

/** POSIX shell quoting: safe for any string. */
export function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'"'"'`)}'`;
}

function commandText(spec: Spec): string {
  return typeof spec.command === 'string' ? spec.command : spec.command.map(shellQuote).join(' ');
}

/** `%job run [options] -- command`: the magic's own options, so it runs the same job. Secret
 * values the server never echoes stay as a placeholder for the user to fill in. */
export function asMagic(spec: Spec): string {
  const options: string[] = [];
  const add = (flag: string, value: unknown) => {
    if (value !== undefined && value !== null && value !== '' && value !== 0) {
      options.push(flag, shellQuote(String(value)));
    }
  };
  add('--name', spec.name);
  add('--backend', spec.backend);
  add('--image', spec.image);
  add('--gpus', spec.resources?.gpus);
  add('--cpus', spec.resources?.cpus);
  add('--memory', spec.resources?.memory);
  add('--timeout', spec.timeout);
  add('--project', spec.project);
  add('--workspace', spec.workspace);
  Object.entries(spec.env || {}).forEach(([key, value]) => add('--env', `${key}=${value}`));
  return ['%job run', ...options, '--', commandText(spec)].join(' ');
}

/** The spec as a submission body: what the server filled in by default is left out. */
export function submission(spec: Spec): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  Object.entries(spec).forEach(([key, value]) => {
    const empty =
      value === null || value === undefined || value === '' || (Array.isArray(value) && !value.length) ||
      (typeof value === 'object' && value !== null && !Array.isArray(value) && !Object.keys(value).length);
    if (!empty) {
      body[key] = value;
    }
  });
  return body;
}

/** A curl command that submits the same spec (the token comes from $JUPYTER_TOKEN). */
export function asCurl(spec: Spec, baseUrl = PageConfig.getBaseUrl()): string {
  const endpoint = URLExt.join(baseUrl, 'jupyter-jobs', 'jobs');
  return [
    `curl -X POST ${shellQuote(endpoint)}`,
    `  -H "Authorization: token $JUPYTER_TOKEN" -H 'Content-Type: application/json'`,
    `  -d ${shellQuote(JSON.stringify(submission(spec)))}`
  ].join(' \\\n');
}

/** Whether a spec holds values the server would not show (they must be typed in again). */
export function hasRedacted(spec: Spec): boolean {
  return Object.values(spec.env || {}).includes(REDACTED);
}
