// Who submits from this browser profile (sent with each submission and rerun, and asked for by
// the notifications).

/** Who submits from this browser profile: `browser:<id>`, an id kept in localStorage (one per
 * profile, shared by its tabs). The server records it with each job this panel starts, and
 * the notifications (notifications/notify.ts) ask for the jobs it started. */
let origin: string | null = null;
export function browserOrigin(): string {
  if (origin) {
    return origin;
  }
  const key = 'jupyter-jobs:browser-id';
  let id: string | null = null;
  try {
    id = localStorage.getItem(key);
    if (!id || !/^[A-Za-z0-9-]{1,64}$/.test(id)) {
      id = randomId();
      localStorage.setItem(key, id);
    }
  } catch {
    id ??= randomId(); // storage refused: an id for this page only
  }
  return (origin = `browser:${id}`);
}

/** 32 random hex digits (getRandomValues works on plain http too, unlike randomUUID). */
function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, '0')).join('');
}
