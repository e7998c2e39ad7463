// Repeating refreshes for pages that show live state, stopped when the page is left.

/** Run `fn` now and then every `ms` (after the previous run ended) until `stop()`. */
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      await fn();
    } catch (err) {
      console.warn("refresh failed:", err);
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
