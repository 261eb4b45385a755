// The one call of js-yaml the panel makes (the package ships no types of its own).
declare module 'js-yaml' {
  export function load(text: string): unknown;
}
