// What the sidebar's forms (a new job, a new schedule, a new deployment) share: a labelled field
// with its error beside it, the service's 400 read as a message plus each bad field's problem, and
// numbers sent as typed.
import * as React from 'react';

import { ApiError, FieldError } from '../api';
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
export type Bound = {
  name: string;
  value: string;
  onChange: (e: React.ChangeEvent<Input>) => void;
};
export type Bind<K extends string = string> = (key: K) => Bound;

/** A number field as typed: a number when it reads as one, else the text itself, so that the
 * server's 400 names it with the rest ("'abc' is not a number") instead of it being dropped. */
export function numberAsTyped(text: string): number {
  const n = Number(text);
  return (text.trim() && Number.isFinite(n) ? n : text) as number;
}

/** The server's 400 with what the form itself could not read (`unread`: ports that are not
 * PORT:NAME...) in place of the server's reading of the same fields, so one answer names every
 * bad field in the form's words. */
export function withUnread(error: ApiError, unread: FieldError[]): ApiError {
  if (!unread.length || error.status !== 400) {
    return error;
  }
  const covered = (field: string) => unread.some(u => field === u.field || field.startsWith(`${u.field}.`));
  return new ApiError(error.message, 400, [...(error.errors || []).filter(e => !covered(e.field)), ...unread]);
}

/** `errors` less those of `field` and its parts (`expose.1.name`): an edit of the field clears them. */
export function withoutField(errors: Record<string, string>, field: string): Record<string, string> {
  const left = Object.entries(errors).filter(([k]) => k !== field && !k.startsWith(`${field}.`));
  return left.length === Object.keys(errors).length ? errors : Object.fromEntries(left);
}

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

/** A small form's state: its text values, each bound to its input by `bind`, and the service's
 * last refusal: its message, and each bad field's problem under the server's name for it
 * (`fieldOf` a value: `spec.expose`, `replicas.max`), cleared as that value is edited. */
export function useForm<K extends string>(initial: () => Record<K, string>, fieldOf: (key: K) => string, shown: (field: string) => boolean) {
  const [values, setValues] = React.useState(initial);
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const bind: Bind<K> = key => ({
    name: key,
    value: values[key],
    onChange: e => {
      const value = e.target.value;
      setValues(v => ({ ...v, [key]: value }));
      setErrors(current => withoutField(current, fieldOf(key)));
    }
  });
  /** Runs `action` (a request); a refusal is shown, each problem beside its field. True when it
   * went through. */
  const submit = async (action: () => Promise<unknown>, what: string, unread: FieldError[] = []): Promise<boolean> => {
    setBusy(true);
    setErrors({});
    setError(null);
    try {
      await action();
      return true;
    } catch (err) {
      const { message, byField } = describe(withUnread(err as ApiError, unread), shown, what);
      setErrors(byField);
      setError(message);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { values, setValues, bind, errors, error, busy, submit };
}
