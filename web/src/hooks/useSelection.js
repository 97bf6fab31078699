import { useState } from 'react';

/** Picks several people: a Map id → user and a toggle. */
export function useSelection() {
  const [selected, setSelected] = useState(() => new Map());
  function toggle(user) {
    setSelected((current) => {
      const next = new Map(current);
      if (next.has(user.id)) next.delete(user.id);
      else next.set(user.id, user);
      return next;
    });
  }
  return [selected, toggle];
}
