// The schedules' calls: the list, one schedule, create, pause or resume, and delete.
import { json } from '../api/request';
import type { Schedule, ScheduleInput, Schemas } from '../api/types';

export const schedulesApi = {
  schedules: () => json<Schemas['SchedulePage']>(['schedules'], {}, '?limit=100'),
  schedule: (id: string) => json<Schedule>(['schedules', id]),
  createSchedule: (input: ScheduleInput) => json<Schedule>(['schedules'], { method: 'POST', body: JSON.stringify(input) }),
  scheduleAction: (id: string, action: 'pause' | 'resume') => json<Schedule>(['schedules', id, action], { method: 'POST', body: '{}' }),
  removeSchedule: (id: string) => json<void>(['schedules', id], { method: 'DELETE' })
};
