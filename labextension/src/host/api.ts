// The host view's call: GET /jupyter-jobs/host (every GPU of the host, who holds it, the queue
// across users with each job's reason, each user's GPU-hours).
import { json } from '../api/request';
import type { Schemas } from '../api/types';

export type HostReply = Schemas['HostReply'];
export type HostDevice = Schemas['HostDevice'];
export type HostQueued = Schemas['HostQueued'];
export type GPUUse = Schemas['GPUUse'];

export const hostApi = {
  read: () => json<HostReply>(['host'])
};
