// Which jobs someone in this page is looking at, so that their ends are no news (notify.ts
// leaves them out): a job whose tab is on screen, a job a `%%job` cell follows, a job
// cancelled from this browser. Views report here; the notifier only asks.
/** Where a job is on screen: its tab, or the cell that follows it. */
export type WatchPlace = 'tab' | 'cell';

interface Watch {
  place: WatchPlace;
  /** Whether the view is on screen now (a tab behind another one is not). */
  shown: () => boolean;
}

export class Watching {
  private readonly _views = new Map<string, Set<Watch>>();
  private readonly _cancelled = new Set<string>();
  private readonly _seenEnded = new Set<string>();

  /** A view of job `id` while it exists; call the result when it goes. */
  watch(id: string, place: WatchPlace, shown: () => boolean): () => void {
    const watch: Watch = { place, shown };
    const views = this._views.get(id) ?? new Set<Watch>();
    views.add(watch);
    this._views.set(id, views);
    return () => {
      views.delete(watch);
      if (!views.size && this._views.get(id) === views) {
        this._views.delete(id);
      }
    };
  }

  /** This browser asked to cancel it: the user knows how it ends. */
  cancelled(id: string): void {
    this._cancelled.add(id);
  }

  /** A view showed the job's end while on screen in a visible page (the notifier may poll
   * only after the tab is closed: the user saw the end all the same). */
  sawEnd(id: string): void {
    if (this.inView(id)) {
      this._seenEnded.add(id);
    }
  }

  /** Whether a view on screen, in a visible page, shows the job now. */
  inView(id: string): boolean {
    if (document.visibilityState !== 'visible') {
      return false; // a hidden page shows nothing: its notifications are the only word
    }
    return [...(this._views.get(id) ?? [])].some(w => w.shown());
  }

  /** Why the end of job `id` needs no notification, or null when nobody watched it. */
  why(id: string): 'cancelled here' | 'seen' | WatchPlace | null {
    if (this._cancelled.has(id)) {
      return 'cancelled here';
    }
    if (this._seenEnded.has(id)) {
      return 'seen';
    }
    if (!this.inView(id)) {
      return null;
    }
    return [...this._views.get(id)!].find(w => w.shown())!.place;
  }
}

/** The page's one registry: the job tabs, the cells' outputs and the cancel calls report to
 * it, and the end notifier reads it. */
export const watching = new Watching();
