import { useEffect, useId, useRef } from 'react';
import { X } from 'lucide-react';

/**
 * A modal dialog on the native `<dialog>` element: the browser traps focus, makes the page behind
 * it inert, and closes it on Escape. `onClose` runs however it was closed.
 */
export function Dialog({ title, onClose, children, footer, testId, className = '' }) {
  const ref = useRef(null);
  const titleId = useId();

  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.open && dialog.close();
  }, []);

  function onClick(event) {
    // A click on the backdrop lands on the dialog element itself.
    if (event.target === ref.current) onClose();
  }

  return (
    <dialog
      ref={ref}
      className={`dialog ${className}`}
      aria-labelledby={titleId}
      onClose={onClose}
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
      onClick={onClick}
      data-testid={testId}
    >
      <div className="dialog-body">
        <header className="dialog-header">
          <h2 id={titleId}>{title}</h2>
          <button type="button" className="icon-button" onClick={onClose} aria-label="Close">
            <X size={18} aria-hidden="true" />
          </button>
        </header>
        <div className="dialog-content">{children}</div>
        {footer && <footer className="dialog-footer">{footer}</footer>}
      </div>
    </dialog>
  );
}
