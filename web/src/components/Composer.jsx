import { useId, useLayoutEffect, useRef } from 'react';
import { SendHorizontal } from 'lucide-react';

/** The server's limit on a message (`MAX_MESSAGE_CHARS`). */
export const MAX_MESSAGE_CHARS = 10_000;
const MAX_HEIGHT_PX = 180;

/** The message box: Enter sends, Shift+Enter starts a new line; it grows with its text. */
export function Composer({ peerName, value, onChange, onBlur, onSend, autoFocus }) {
  const inputId = useId();
  const input = useRef(null);
  const length = value.trim().length;
  const tooLong = value.length > MAX_MESSAGE_CHARS;
  const canSend = length > 0 && !tooLong;

  useLayoutEffect(() => {
    const el = input.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight, MAX_HEIGHT_PX)}px`;
  }, [value]);

  function submit(event) {
    event?.preventDefault();
    if (!canSend) return;
    onSend(value);
    input.current?.focus();
  }

  function onKeyDown(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  }

  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor={inputId} className="visually-hidden">Message {peerName}</label>
      <div className={`composer-box${tooLong ? ' invalid' : ''}`}>
        <textarea
          id={inputId}
          ref={input}
          data-testid="composer-input"
          rows={1}
          placeholder={`Message ${peerName}`}
          value={value}
          onChange={(e) => onChange(e.target.value)}
          onKeyDown={onKeyDown}
          onBlur={onBlur}
          autoFocus={autoFocus}
          aria-describedby={tooLong ? `${inputId}-count` : undefined}
          enterKeyHint="send"
        />
        {value.length > MAX_MESSAGE_CHARS - 500 && (
          <span id={`${inputId}-count`} className="composer-count" aria-live="polite">
            {value.length.toLocaleString()} / {MAX_MESSAGE_CHARS.toLocaleString()}
          </span>
        )}
      </div>
      <button type="submit" className="send-button" data-testid="send-button" disabled={!canSend} aria-label="Send message" title="Send (Enter)">
        <SendHorizontal size={18} aria-hidden="true" />
      </button>
    </form>
  );
}
