// Small shared pieces: loading/error states, labels, a data hook.
import { useCallback, useEffect, useState } from 'preact/hooks';

/**
 * Runs `load` (async, given an AbortSignal) when `deps` change; `reload` runs it again, and so
 * does a timer every `refreshMs` when given (while the tab is visible). A refresh keeps showing
 * the previous answer until the new one arrives.
 */
export function useData(load, deps, refreshMs = 0) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!refreshMs) return undefined;
    const id = setInterval(() => document.visibilityState === 'visible' && setTick((t) => t + 1), refreshMs);
    return () => clearInterval(id);
  }, [refreshMs]);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    load(ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ loading: false, data, error: null }),
      (error) => !ctl.signal.aborted && setState({ loading: false, data: null, error }),
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** The answer of `useData`: a spinner, the API's error as given, or `children(data)`. */
export function Loaded({ state, children, what = 'data' }) {
  if (state.error) return <ErrorBox error={state.error} />;
  if (state.data === null || state.data === undefined) return <p class="muted" role="status">Loading {what}…</p>;
  return children(state.data);
}

export function ErrorBox({ error }) {
  const type = error && error.type ? `${error.type}: ` : '';
  const status = error && error.status ? ` (HTTP ${error.status})` : '';
  return (
    <div class="error" role="alert">
      {type}
      {String((error && error.message) || error)}
      {status}
    </div>
  );
}

/** Label pairs as chips. */
export function Labels({ labels, skip = [] }) {
  const keys = Object.keys(labels || {}).filter((k) => !skip.includes(k)).sort();
  return (
    <span class="labels">
      {keys.map((k) => (
        <span class="chip" key={k}>
          {k}=<b>{labels[k]}</b>
        </span>
      ))}
    </span>
  );
}

/** A horizontal tab list (buttons, arrow keys move between them). */
export function Tabs({ tabs, value, onChange, label }) {
  const onKey = (e) => {
    const i = tabs.findIndex(([k]) => k === value);
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      const n = (i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length;
      onChange(tabs[n][0]);
      e.preventDefault();
    }
  };
  return (
    <div class="tabs" role="tablist" aria-label={label} onKeyDown={onKey}>
      {tabs.map(([k, name]) => (
        <button type="button" role="tab" aria-selected={k === value} tabIndex={k === value ? 0 : -1} onClick={() => onChange(k)}>
          {name}
        </button>
      ))}
    </div>
  );
}

/** Relative ranges offered by the pickers. */
export const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '2d', '7d', '30d'];
