// Where the PromQL editor's caret is, for autocomplete: typing a metric or function name, a
// label name (inside `{…}` or a `by (…)` list), or a label value (after `name="`).

/** The word being typed before `pos` and what kind of completion fits there. */
export function completionContext(text, pos) {
  const before = text.slice(0, pos);
  // Inside braces? Find the last unclosed `{`.
  let depth = 0;
  let open = -1;
  let inString = false;
  for (let i = 0; i < before.length; i++) {
    const c = before[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === inString) inString = false;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') inString = c;
    else if (c === '{') {
      depth++;
      open = i;
    } else if (c === '}') depth = Math.max(0, depth - 1);
  }
  if (depth > 0 && open >= 0) {
    const inner = before.slice(open + 1);
    const metric = (before.slice(0, open).match(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/) || [])[1] || '';
    const v = inner.match(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)$/);
    if (v) return { kind: 'value', label: v[1], prefix: v[3], metric, from: pos - v[3].length };
    const n = inner.match(/(?:^|[,{\s])([a-zA-Z_][a-zA-Z0-9_]*)?$/);
    if (n && !inString) return { kind: 'label', prefix: n[1] || '', metric, from: pos - (n[1] || '').length };
    return null;
  }
  if (inString) return null;
  // `by (` / `without (` / `on (` lists name labels.
  const grouping = before.match(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*?)([a-zA-Z_][a-zA-Z0-9_]*)?$/);
  if (grouping) return { kind: 'label', prefix: grouping[3] || '', metric: '', from: pos - (grouping[3] || '').length };
  const w = before.match(/([a-zA-Z_:][a-zA-Z0-9_:]*)$/);
  if (!w) return null;
  return { kind: 'metric', prefix: w[1], from: pos - w[1].length };
}

