/**
 * The gist of an error message for a test title: its first line, plus the
 * next one when the first only introduces a list ("...:"), shortened.
 */
export function firstLine(e: unknown, max = 160): string {
  const lines = (e instanceof Error ? e.message : String(e)).split('\n').map((l) => l.trim()).filter(Boolean);
  let line = lines[0] ?? '';
  if (line.endsWith(':') && lines.length > 1) line = `${line} ${lines[1]}`;
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}
