// The form field of exposed ports, shared by the job form and the form of a new deployment.
import * as React from 'react';

import { Bound, Field } from '../common/fields';

/** Ports served through this server: PORT:NAME or PORT:NAME:/health entries, by commas or
 * lines. The server names a bad entry's part (`expose.1.name`; a deployment's
 * `spec.expose.1.name`: `field` says which): shown here with the entry's number. */
export function ExposeField(props: {
  input: Bound;
  errors: Record<string, string>;
  placeholder: string;
  /** What the ports are for, after the syntax ("the job listens on $PORT_<NAME>…"). */
  hint: string;
  field?: string;
  label?: string;
}): JSX.Element {
  const { input, errors, placeholder, hint, field = 'expose', label = 'Expose ports' } = props;
  const lines = input.value.split('\n').length;
  const key = Object.keys(errors).find(k => k === field || k.startsWith(`${field}.`));
  const entry = key ? /^\.(\d+)/.exec(key.slice(field.length)) : null;
  const error = key === undefined ? undefined : `${entry ? `entry ${Number(entry[1]) + 1}: ` : ''}${errors[key]}`;
  return (
    <Field label={label} field={field} error={error}>
      <textarea {...input} placeholder={placeholder} rows={Math.min(6, Math.max(1, lines))} spellCheck={false} />
      <span className="jp-JobsMuted jp-JobsHint">PORT:NAME or PORT:NAME:/health, by commas or lines; {hint}</span>
    </Field>
  );
}
