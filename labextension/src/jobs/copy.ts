// A job's spec written out as something a user can paste: the %job magic, or curl (the job
// file comes from the server: jobsApi.specFile, in api.ts).
import { PageConfig, URLExt } from '@jupyterlab/coreutils';

import { Spec } from '../api';
import { exposeEntry } from '../endpoints/endpoints';
import { literal } from './parameters';

const REDACTED = '********';

/** POSIX shell quoting: safe for any string. */
export function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** What a job runs: the `%%job` cell it came from, as written; else in one line its command
 * (an argv shell-quoted), or `notebook PATH` and its parameters as NAME=VALUE (JSON values). The list, the page (search, sort), the job's
 * tab and the comparison all say it this way. */
export function whatItRuns(spec: Pick<Spec, 'command' | 'notebook' | 'parameters' | 'cell'>): string {
  if (spec.cell) {
    return spec.cell; // a %%job cell, as the user wrote it (its command is `python3 -c <code>`)
  }
  if (spec.notebook) {
    const given = Object.entries(spec.parameters || {}).map(([name, value]) => `${name}=${JSON.stringify(value)}`);
    return ['notebook', spec.notebook, ...given].join(' ');
  }
  const command = spec.command ?? '';
  return typeof command === 'string' ? command : command.map(shellQuote).join(' ');
}

/** `%job run [options] -- command`, or `%job notebook [options] -p NAME=VALUE... PATH`: the
 * magic's own options, so it runs the same job. The magic reads a parameter's VALUE as YAML:
 * each is written as JSON that YAML reads back the same. Like --workspace, the notebook's
 * path is from the server's root (where a notebook's magic there resolves it). Secret values
 * the server never echoes stay as a placeholder for the user to fill in. An exposed port is
 * `--expose PORT:NAME` (or `PORT:NAME:/health`), one per endpoint. */
export function asMagic(spec: Spec): string {
  if (spec.cell) {
    return spec.cell; // the %%job cell it came from: pasted into a notebook, it runs the same job
  }
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
  if (spec.git) {
    add('--git', `${spec.git.url}${spec.git.ref && spec.git.ref !== 'HEAD' ? `@${spec.git.ref}` : ''}`);
  }
  add('--instance', spec.instance_type);
  Object.entries(spec.env || {}).forEach(([key, value]) => add('--env', `${key}=${value}`));
  (spec.expose || []).forEach(expose => add('--expose', exposeEntry(expose)));
  if (spec.notebook) {
    add('--kernel', spec.kernel);
    Object.entries(spec.parameters || {}).forEach(([name, value]) => add('-p', `${name}=${literal(value)}`));
    const path = spec.workspace ? `${spec.workspace.replace(/\/+$/, '')}/${spec.notebook}` : spec.notebook;
    return ['%job notebook', ...options, shellQuote(path)].join(' ');
  }
  return ['%job run', ...options, '--', whatItRuns(spec)].join(' ');
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
