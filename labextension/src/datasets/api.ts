// The calls of datasets and models (one kind each, under /jupyter-jobs/datasets or /models):
// the list (each with its newest version), one name's versions, a new version (from a folder
// under the root, or from a finished job's artifacts; a model also with its framework and
// description), one version with its lineage, a version's files as a zip, and deleting a
// version (a 409 while unfinished jobs read it).
import { json, url } from '../api/request';
import type { DatasetMade, DatasetSummary, DatasetVersion, DatasetVersionDetail, JobVersions } from '../api/types';
import { DATASETS, Kind } from './kind';

/** Where a new version comes from: a folder under the server's root, or a job's artifacts (all,
 * or one file or folder of them); a model's also says its framework and description. */
export type DatasetSource = ({ folder: string } | { job: string; path?: string }) & { framework?: string; description?: string };

export interface VersionsApi {
  list: () => Promise<DatasetSummary[]>;
  versions: (name: string) => Promise<DatasetVersion[]>;
  create: (name: string, source: DatasetSource) => Promise<DatasetMade>;
  version: (name: string, version: number) => Promise<DatasetVersionDetail>;
  remove: (name: string, version: number) => Promise<void>;
  /** The address of a version's files as one zip (a link's: the browser's login goes with it). */
  download: (name: string, version: number) => string;
}

/** The calls of one kind. Its replies are read as datasets' (a model's are those and more). */
export function versionsApi(kind: Kind): VersionsApi {
  const at = (...parts: string[]) => [kind.path, ...parts];
  return {
    list: () => json<Record<string, DatasetSummary[]>>(at()).then(reply => reply[kind.path]),
    versions: name => json<{ versions: DatasetVersion[] }>(at(name)).then(reply => reply.versions),
    create: (name, source) => json<DatasetMade>(at(name, 'versions'), { method: 'POST', body: JSON.stringify(source) }),
    version: (name, version) => json<DatasetVersionDetail>(at(name, 'versions', String(version))),
    remove: (name, version) => json<void>(at(name, 'versions', String(version)), { method: 'DELETE' }),
    download: (name, version) => url(...at(name, 'versions', String(version), 'download'))
  };
}

export const datasetsApi = versionsApi(DATASETS);

/** The dataset and model versions a job made: its outputs kept, its artifacts saved. */
export const jobVersions = (jobId: string): Promise<JobVersions> => json<JobVersions>(['jobs', jobId, 'versions']);
