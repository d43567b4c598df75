// Client-side routing over the history API: the server answers every console path with the
// same shell, and this module tells the app which page to draw.
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set();

/** Current location as `{path, params}`. */
export function location() {
  return { path: window.location.pathname, params: new URLSearchParams(window.location.search) };
}

/** Goes to `href` (same origin) without reloading; `replace` keeps the history entry. */
export function navigate(href, { replace = false } = {}) {
  if (replace) window.history.replaceState(null, '', href);
  else window.history.pushState(null, '', href);
  listeners.forEach((f) => f());
  window.scrollTo(0, 0);
}

/** Re-renders the caller when the location changes. */
export function useLocation() {
  const [loc, setLoc] = useState(location());
  useEffect(() => {
    const f = () => setLoc(location());
    listeners.add(f);
    window.addEventListener('popstate', f);
    return () => {
      listeners.delete(f);
      window.removeEventListener('popstate', f);
    };
  }, []);
  return loc;
}

const CONSOLE = /^\/($|slos|explore|graph|alerts|logs|traces|status)/;

/** Installs one click handler that keeps console links inside the app. */
export function interceptLinks() {
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest && e.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const u = new URL(a.href, window.location.href);
    if (u.origin !== window.location.origin || !CONSOLE.test(u.pathname)) return;
    e.preventDefault();
    navigate(u.pathname + u.search + u.hash);
  });
}
