// api/: what every feature shares to talk to the job service: the types (types.ts, aliases of
// schema.d.ts, which is GENERATED from jupyter_jobs/openapi.json by `jlpm gen:types`: do not
// edit it), the one request helper (request.ts) and this browser's origin (origin.ts). Each
// feature's own calls live in its folder (jobs/api.ts, schedules/api.ts, workflows/api.ts,
// artifacts/api.ts, logs/api.ts, metrics/api.ts), all over request.ts.
export * from './types';
export { ApiError, errorMessage } from './request';
export { browserOrigin } from './origin';
