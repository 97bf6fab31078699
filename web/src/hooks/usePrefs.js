/** The signed-in user's notification preferences (see lib/prefs.js), shared by every tab of theirs. */
import { useCallback, useEffect, useState } from 'react';
import { parsePrefs, prefsKey } from '../lib/prefs.js';

export function usePrefs(userId) {
  const key = prefsKey(userId);
  const [prefs, setPrefs] = useState(() => parsePrefs(localStorage.getItem(key)));

  useEffect(() => {
    function onStorage(event) {
      if (event.key === key) setPrefs(parsePrefs(event.newValue));
    }
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, [key]);

  const update = useCallback(
    (change) => {
      setPrefs((current) => {
        const next = change(current);
        try {
          localStorage.setItem(key, JSON.stringify(next));
        } catch {
          // Storage full or blocked: the choice holds for this tab only.
        }
        return next;
      });
    },
    [key],
  );

  return [prefs, update];
}
