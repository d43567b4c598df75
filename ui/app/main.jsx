// The console's shell: navigation, theme (system, light or dark), and the page for the path.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { interceptLinks, useLocation } from './router.js';
import { SloList, SloPage } from './pages/slos.jsx';
import { Explore } from './pages/explore.jsx';
import { Alerts } from './pages/alerts.jsx';
import { Logs } from './pages/logs.jsx';
import { Traces, TracePage } from './pages/traces.jsx';
import { Status } from './pages/status.jsx';
import { ThemeContext } from './theme.js';

const NAV = [
  ['/slos', 'SLOs'],
  ['/alerts', 'Alerts'],
  ['/explore', 'Explore'],
  ['/logs', 'Logs'],
  ['/traces', 'Traces'],
  ['/status', 'Status'],
];

function systemDark() {
  return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
}

function useTheme() {
  const [choice, setChoice] = useState(() => {
    try {
      return localStorage.getItem('sextant-theme') || 'system';
    } catch {
      return 'system';
    }
  });
  const [sysDark, setSysDark] = useState(systemDark());
  useEffect(() => {
    const mq = window.matchMedia('(prefers-color-scheme: dark)');
    const f = () => setSysDark(mq.matches);
    mq.addEventListener('change', f);
    return () => mq.removeEventListener('change', f);
  }, []);
  const effective = choice === 'system' ? (sysDark ? 'dark' : 'light') : choice;
  useEffect(() => {
    document.documentElement.dataset.theme = effective;
    try {
      localStorage.setItem('sextant-theme', choice);
    } catch {
      /* private mode: the choice lasts for this page */
    }
  }, [choice, effective]);
  const next = { system: 'light', light: 'dark', dark: 'system' };
  return [choice, effective, () => setChoice(next[choice] || 'system')];
}

function page(path, params) {
  if (path === '/' || path === '/slos') return <SloList />;
  if (path.startsWith('/slos/')) return <SloPage id={decodeURIComponent(path.slice(6))} />;
  if (path === '/explore' || path === '/graph') return <Explore params={params} />;
  if (path === '/alerts') return <Alerts />;
  if (path === '/logs') return <Logs params={params} />;
  if (path === '/traces') return <Traces params={params} />;
  if (path.startsWith('/traces/')) return <TracePage id={decodeURIComponent(path.slice(8))} />;
  if (path === '/status') return <Status />;
  return <p class="error">No console page at {path}.</p>;
}

function App() {
  const { path, params } = useLocation();
  const [choice, effective, toggle] = useTheme();
  const section = path === '/' ? '/slos' : path === '/graph' ? '/explore' : '/' + path.split('/')[1];
  useEffect(() => {
    const name = NAV.find(([p]) => p === section);
    document.title = name ? `${name[1]} · Sextant` : 'Sextant';
  }, [section]);
  return (
    <ThemeContext.Provider value={effective}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="/slos">Sextant</a>
        <nav aria-label="Console">
          {NAV.map(([p, name]) => (
            <a href={p} aria-current={section === p ? 'page' : undefined}>
              {name}
            </a>
          ))}
        </nav>
        <button type="button" class="theme" onClick={toggle} title="Switch theme (system → light → dark)" aria-label={`Theme: ${choice}`}>
          {choice === 'system' ? '◐ auto' : choice === 'light' ? '☀ light' : '☾ dark'}
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {page(path, params)}
      </main>
    </ThemeContext.Provider>
  );
}

interceptLinks();
render(<App />, document.getElementById('app'));
