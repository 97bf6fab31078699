/** A small indeterminate spinner; `label` is what a screen reader hears. */
export function Spinner({ label = 'Loading', size = 18 }) {
  return (
    <span className="spinner" role="status" aria-label={label} style={{ '--size': `${size}px` }} />
  );
}
