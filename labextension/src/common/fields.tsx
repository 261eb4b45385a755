// What the sidebar's forms (a new job, a new schedule) share: a labelled field with its error
// beside it, and the service's 400 read as a message plus each bad field's problem.
import * as React from 'react';

import { ApiError } from '../api';
import { count } from './words';

/** The service's complaint as a message, and each bad field's problem by field name; the
 * problems of fields the form does not show (a draft's tags...) are in the message, after
 * `what` ("The job was not submitted"). */
export function describe(
  error: ApiError,
  shown: (field: string) => boolean,
  what: string
): { message: string; byField: Record<string, string> } {
  const byField: Record<string, string> = {};
  (error.errors || []).forEach(fe => (byField[fe.field] = fe.message));
  const fields = Object.keys(byField).length;
  const unshown = Object.entries(byField)
    .filter(([field]) => !shown(field))
    .map(([field, message]) => ` ${field}: ${message}`);
  return {
    message: fields ? `${what}: ${count(fields, 'field')} to fix.${unshown.join('')}` : error.message,
    byField
  };
}

export function Field(props: { label: string; field: string; error?: string; ignored?: string; children: React.ReactNode }): JSX.Element {
  return (
    <label className={`jp-JobsField${props.ignored ? ' jp-mod-ignored' : ''}`} data-field={props.field} title={props.ignored}>
      <span>
        {props.label}
        {props.ignored ? <span className="jp-JobsMuted"> (not applied by this backend)</span> : null}
      </span>
      {props.children}
      {props.error ? <span className="jp-JobsField-error">{props.error}</span> : null}
    </label>
  );
}

/** The props that tie an input to one of a form's values: its name, value and change handler. */
export type Input = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
export type Bind<K extends string = string> = (key: K) => {
  name: string;
  value: string;
  onChange: (e: React.ChangeEvent<Input>) => void;
};

/** One of a few choices, as a radio group named `field`. */
export function Choice<T extends string>(props: {
  legend: string;
  field: string;
  choices: [T, string][];
  value: T;
  onChange: (value: T) => void;
}): JSX.Element {
  const { legend, field, choices, value, onChange } = props;
  return (
    <fieldset className="jp-JobsChoice" data-field={field}>
      <legend>{legend}</legend>
      {choices.map(([choice, label]) => (
        <label key={choice}>
          <input type="radio" name={field} value={choice} checked={value === choice} onChange={() => onChange(choice)} /> {label}
        </label>
      ))}
    </fieldset>
  );
}

/** The first problem the service named for `field` or one of its parts (`requirements.2`). */
export function errorOf(errors: Record<string, string>, field: string): string | undefined {
  const key = Object.keys(errors).find(k => k === field || k.startsWith(`${field}.`));
  return key === undefined ? undefined : errors[key];
}
