// The new-job form's parts for where a job's files and packages come from and what machine it
// asks for: a folder or a git repository (URL, ref, subdir), its requirements (none, auto, a
// file in the workspace, a list), and an instance type the admin named.
import * as React from 'react';

import { InstanceType, Schemas, SpecInput } from '../api';
import { Bind, Choice, errorOf, Field } from '../common/fields';
import { count } from '../common/words';
import { Draft } from '../sidebar/model';

export type { InstanceType };
type GPU = Schemas['GPUInfo'];

export type SourceKey = 'source' | 'workspace' | 'gitUrl' | 'gitRef' | 'gitSubdir' | 'requirementsKind' | 'requirements' | 'instanceType';
type Source = 'folder' | 'git';
type RequirementsKind = 'none' | 'auto' | 'file' | 'list';

/** The form's values for a draft's workspace, requirements and instance type. */
export function sourceValues(draft: Draft): Record<SourceKey, string> {
  const git = draft.git;
  const r = draft.requirements;
  const kind: RequirementsKind = r === undefined || r === null || r === '' ? 'none' : Array.isArray(r) ? 'list' : r === 'auto' ? 'auto' : 'file';
  return {
    source: git ? 'git' : 'folder', workspace: draft.workspace || '',
    gitUrl: git?.url || '', gitRef: git?.ref && git.ref !== 'HEAD' ? git.ref : '', gitSubdir: git?.subdir || '',
    requirementsKind: kind, requirements: Array.isArray(r) ? r.join('\n') : kind === 'file' ? String(r) : '',
    instanceType: draft.instance_type || ''
  };
}

/** The spec's part the values describe: `workspace` or `git`, `requirements`, `instance_type`. */
export function sourceSpec(values: Record<SourceKey, string>): Partial<SpecInput> {
  const spec: Partial<SpecInput> = { workspace: '' };
  if (values.source === 'git') {
    const [ref, subdir] = [values.gitRef.trim(), values.gitSubdir.trim()];
    spec.git = { url: values.gitUrl.trim(), ...(ref ? { ref } : {}), ...(subdir ? { subdir } : {}) };
  } else {
    spec.workspace = values.workspace;
  }
  const kind = values.requirementsKind as RequirementsKind;
  if (kind === 'auto') {
    spec.requirements = 'auto';
  } else if (kind === 'file') {
    spec.requirements = values.requirements.trim();
  } else if (kind === 'list') {
    spec.requirements = values.requirements.split('\n').map(line => line.trim()).filter(Boolean);
  }
  if (values.instanceType) {
    spec.instance_type = values.instanceType;
  }
  return spec;
}

/** The fields a source hides (the form does not show their errors beside them). */
export function hiddenBySource(source: string): string[] {
  return source === 'git' ? ['workspace'] : ['git', 'git.url', 'git.ref', 'git.subdir'];
}

export const SOURCE_FIELDS = ['workspace', 'git', 'git.url', 'git.ref', 'git.subdir', 'requirements', 'instance_type'];

/** Folder or git, and the matching fields. */
export function SourceFields(props: { bind: Bind<SourceKey>; errors: Record<string, string>; setSource: (source: Source) => void }): JSX.Element {
  const { bind, errors, setSource } = props;
  const source = bind('source').value as Source;
  const choices: [Source, string][] = [
    ['folder', 'A folder'],
    ['git', 'A git repository']
  ];
  return (
    <>
      <Choice legend="Files from" field="source" choices={choices} value={source} onChange={setSource} />
      {source === 'git' ? (
        <>
          <Field label="Repository" field="git.url" error={errors['git.url'] ?? errors.git}>
            <input {...bind('gitUrl')} placeholder="https://…/repo.git, git@host:repo, or a path on the server" />
          </Field>
          <div className="jp-JobsRowFields jp-JobsRowFields-2">
            <Field label="Ref" field="git.ref" error={errors['git.ref']}>
              <input {...bind('gitRef')} placeholder="main" title="a branch, tag or commit; empty: the default branch" />
            </Field>
            <Field label="Folder in it" field="git.subdir" error={errors['git.subdir']}>
              <input {...bind('gitSubdir')} placeholder="e.g. train; empty: all" />
            </Field>
          </div>
        </>
      ) : (
        <Field label="Workspace" field="workspace" error={errors.workspace}>
          <input {...bind('workspace')} placeholder="a folder under the server root; empty: the root" />
        </Field>
      )}
    </>
  );
}

/** Packages to run with: none, auto, a file in the workspace, or a list (one a line). */
export function RequirementsField({ bind, errors }: { bind: Bind<SourceKey>; errors: Record<string, string> }): JSX.Element {
  const kind = bind('requirementsKind').value as RequirementsKind;
  const lines = bind('requirements').value.split('\n').length;
  return (
    <Field label="Packages" field="requirements" error={errorOf(errors, 'requirements')}>
      <select {...bind('requirementsKind')} aria-label="packages from">
        <option value="none">none: the job's Python as it is</option>
        <option value="auto">auto: the workspace's requirements.txt, if any</option>
        <option value="file">a requirements file in the workspace</option>
        <option value="list">a list of requirements</option>
      </select>
      {kind === 'file' ? <input {...bind('requirements')} aria-label="requirements file" placeholder="requirements.txt" /> : null}
      {kind === 'list' ? (
        <textarea
          {...bind('requirements')}
          aria-label="requirements"
          placeholder={'one a line, e.g.\nnumpy==2.1\neinops'}
          rows={Math.min(10, Math.max(2, lines + 1))}
          spellCheck={false}
        />
      ) : null}
      {kind === 'none' ? null : (
        <span className="jp-JobsMuted jp-JobsHint">Installed once into a cached environment; the next job installs nothing.</span>
      )}
    </Field>
  );
}

/** What an instance type sets, in words: "1 GPU, 8 CPUs, 32g, docker · pytorch:2.4". */
export function describeType(type: InstanceType): string {
  const r = (type.spec.resources || {}) as { gpus?: number; cpus?: number; memory?: string; nodes?: number };
  const parts = [
    r.gpus ? count(r.gpus, 'GPU') : '',
    r.cpus ? count(r.cpus, 'CPU') : '',
    r.memory ? String(r.memory) : '',
    r.nodes && r.nodes > 1 ? `${r.nodes} nodes` : '',
    [type.backend, type.spec.image].filter(Boolean).join(' · ')
  ];
  return parts.filter(Boolean).join(', ');
}

/** Whether a job of the type could start now: the free GPUs, or why not. */
function availability(type: InstanceType, gpus: GPU[]): string {
  if (!type.available) {
    return `unavailable: ${type.reason}`;
  }
  const wanted = ((type.spec.resources || {}) as { gpus?: number }).gpus;
  return wanted && gpus.length ? `${gpus.filter(g => !g.in_use).length} of ${count(gpus.length, 'GPU')} free` : 'available';
}

/** The admin's instance types; the fields below it override what the chosen one sets. */
export function InstanceTypeField(props: {
  types: InstanceType[];
  gpus: GPU[];
  bind: Bind<SourceKey>;
  onChange: (name: string) => void;
  error?: string;
}): JSX.Element | null {
  const { types, gpus, bind, onChange, error } = props;
  if (!types.length) {
    return null;
  }
  const bound = bind('instanceType');
  return (
    <Field label="Instance type" field="instance_type" error={error}>
      <select name={bound.name} value={bound.value} onChange={e => onChange(e.target.value)}>
        <option value="">none: the fields below</option>
        {types.map(t => (
          <option key={t.name} value={t.name} title={t.reason || undefined}>
            {t.name} — {describeType(t)} ({availability(t, gpus)})
          </option>
        ))}
      </select>
      {bound.value ? <span className="jp-JobsMuted jp-JobsHint">The fields below override the type's where you set them.</span> : null}
    </Field>
  );
}
