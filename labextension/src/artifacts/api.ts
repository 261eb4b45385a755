// The artifacts' calls: a job's artifact list, one artifact's download address, the zip of
// them all, and the first
// bytes of one (for a preview, or a notebook to open).
import { ServerConnection } from '@jupyterlab/services';

import { ApiError, json, settings, url } from '../api/request';
import type { Schemas } from '../api/types';

/** The download address of one artifact (its path keeps its slashes). */
export function artifactUrl(id: string, path: string): string {
  return url('jobs', id, 'artifacts') + '/' + path.split('/').map(encodeURIComponent).join('/');
}

/** The address of the artifacts as one zip, streamed by the server: all, or those under `prefix`. */
export function archiveUrl(id: string, prefix = ''): string {
  return url('jobs', id, 'artifacts.zip') + (prefix ? `?prefix=${encodeURIComponent(prefix)}` : '');
}

export const artifactsApi = {
  artifacts: (id: string) => json<Schemas['ArtifactList']>(['jobs', id, 'artifacts']),
  /** The first `bytes` of an artifact, for a preview. */
  artifactHead: async (id: string, path: string, bytes: number): Promise<Blob> => {
    const response = await ServerConnection.makeRequest(artifactUrl(id, path), { headers: { Range: `bytes=0-${bytes - 1}` } }, settings);
    if (!response.ok) {
      throw new ApiError(`${path}: HTTP ${response.status}`, response.status);
    }
    return response.body ? readAtMost(response.body, bytes) : response.blob();
  }
};

/** At most `bytes` of a response body (a server that ignores Range still sends it all). */
async function readAtMost(body: ReadableStream<Uint8Array>, bytes: number): Promise<Blob> {
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  while (size < bytes) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    parts.push(value);
    size += value.length;
  }
  void reader.cancel();
  return new Blob(parts as BlobPart[]).slice(0, bytes);
}
