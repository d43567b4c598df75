// Alertmanager v2 silence matchers from and to the text the silence form takes.

/** Parses `a="b", c=~"d.*"` (braces optional) into Alertmanager v2 matchers. */
export function parseMatchers(text) {
  const t = text.trim().replace(/^\{/, '').replace(/\}$/, '');
  const out = [];
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))\s*(?:,|$)/gy;
  let m;
  let last = 0;
  while (last < t.length && (m = re.exec(t))) {
    // Only `\"` and `\\` are escapes; any other backslash (regex `\.`) is kept as typed.
    const value = m[3] !== undefined ? m[3].replace(/\\(["\\])/g, '$1') : m[4];
    out.push({ name: m[1], value, isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!') });
    last = re.lastIndex;
  }
  if (last < t.length || !out.length) throw new Error(`cannot parse matchers at: ${t.slice(last).trim() || '(empty)'}`);
  return out;
}

/** A v2 matcher back as text (`name=~"value"`). */
export const matcherText = (m) => `${m.name}${m.isRegex ? (m.isEqual === false ? '!~' : '=~') : m.isEqual === false ? '!=' : '='}${JSON.stringify(m.value)}`;

