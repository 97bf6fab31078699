import { useLayoutEffect, useMemo, useRef, useState } from 'react';
import { motion } from 'framer-motion';
import { AlertCircle, ArrowDown, Check, Clock, MessageCircle, RotateCw } from 'lucide-react';
import { buildTimeline, formatFull, formatTime } from '../lib/format.js';
import { Avatar } from './Avatar.jsx';
import { Spinner } from './Spinner.jsx';

/** Start fetching the previous page this close to the top, before the user actually hits it. */
const LOAD_OLDER_THRESHOLD_PX = 400;
const NEAR_BOTTOM_PX = 120;

const STATUS_LABEL = { pending: 'Sending', sent: 'Sent', failed: 'Not sent' };

function StatusIcon({ status }) {
  if (status === 'pending') return <Clock size={12} aria-label={STATUS_LABEL.pending} />;
  if (status === 'failed') return <AlertCircle size={12} aria-label={STATUS_LABEL.failed} />;
  return <Check size={12} aria-label={STATUS_LABEL.sent} />;
}

function MessageBubble({ row, mine, peer, onRetry }) {
  const { message, first, last } = row;
  return (
    <motion.li
      className={`message-row ${mine ? 'mine' : 'theirs'}${first ? ' first' : ''}${last ? ' last' : ''}`}
      data-testid="message"
      data-status={message.status}
      data-id={message.id ?? ''}
      data-client-msg-id={message.clientMsgId ?? ''}
      initial={message.live ? { opacity: 0, y: 12, scale: 0.97 } : false}
      animate={{ opacity: 1, y: 0, scale: 1 }}
      transition={{ type: 'spring', stiffness: 520, damping: 34, mass: 0.6 }}
    >
      {!mine && (last ? <Avatar name={peer.username} id={peer.id} size={28} /> : <span className="avatar-spacer" />)}
      <div className="message-stack">
        <div className={`bubble${message.status === 'failed' ? ' failed' : ''}${message.status === 'pending' ? ' pending' : ''}`}>
          <p className="bubble-text">{message.content}</p>
          <span className="bubble-meta">
            <time dateTime={message.createdAt} title={formatFull(message.createdAt)}>{formatTime(message.createdAt)}</time>
            {mine && <StatusIcon status={message.status} />}
          </span>
        </div>
        {message.status === 'failed' && (
          <div className="message-failed" role="alert">
            <span>{message.error?.message ?? 'Not sent.'}</span>
            <button type="button" className="retry-button" data-testid="retry-button" onClick={() => onRetry(message.clientMsgId)}>
              <RotateCw size={12} aria-hidden="true" /> Retry
            </button>
          </div>
        )}
      </div>
    </motion.li>
  );
}

/**
 * The scrolling message list. It opens at the newest message, follows new ones while the reader is
 * at the bottom, and keeps the reader's place when an older page is put on top.
 */
export function MessageList({ thread, peer, myId, onLoadOlder, onRetry, onReload }) {
  const scroller = useRef(null);
  const anchor = useRef(null);
  const [awayFromBottom, setAwayFromBottom] = useState(false);
  const rows = useMemo(() => buildTimeline(thread.messages), [thread.messages]);
  const firstKey = rows.find((row) => row.type === 'message')?.key;
  const lastRow = rows.at(-1);
  const lastKey = lastRow?.key;
  const lastMine = lastRow?.message?.senderId === myId;

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const prev = anchor.current;
    let nearBottom;
    if (!prev || prev.peerId !== peer.id) {
      el.scrollTop = el.scrollHeight;
      nearBottom = true;
    } else if (firstKey !== prev.firstKey && lastKey === prev.lastKey) {
      // An older page went on top: keep the same message under the reader's eyes.
      el.scrollTop = prev.scrollTop + (el.scrollHeight - prev.scrollHeight);
      nearBottom = prev.nearBottom;
    } else if (lastKey !== prev.lastKey) {
      nearBottom = prev.nearBottom || lastMine;
      if (nearBottom) el.scrollTo({ top: el.scrollHeight, behavior: prev.lastKey ? 'smooth' : 'instant' });
    } else {
      // Same messages, other details (a status, an error line): stay pinned if the reader was.
      nearBottom = prev.nearBottom;
      if (nearBottom && el.scrollHeight !== prev.scrollHeight) el.scrollTop = el.scrollHeight;
    }
    anchor.current = { peerId: peer.id, firstKey, lastKey, scrollHeight: el.scrollHeight, scrollTop: el.scrollTop, nearBottom };
  });

  function onScroll() {
    const el = scroller.current;
    const distance = el.scrollHeight - el.scrollTop - el.clientHeight;
    const prev = anchor.current;
    // A smooth scroll towards new messages passes through positions far from the bottom; only a
    // scroll upwards means the reader left it.
    const nearBottom = distance < NEAR_BOTTOM_PX || Boolean(prev?.nearBottom && el.scrollTop >= prev.scrollTop);
    if (prev) Object.assign(prev, { scrollTop: el.scrollTop, scrollHeight: el.scrollHeight, nearBottom });
    setAwayFromBottom(!nearBottom && distance > 400);
    if (el.scrollTop < LOAD_OLDER_THRESHOLD_PX) onLoadOlder();
  }

  function jumpToLatest() {
    scroller.current?.scrollTo({ top: scroller.current.scrollHeight, behavior: 'smooth' });
  }

  const empty = thread.loaded && thread.messages.length === 0;
  const initialLoading = !thread.loaded && thread.messages.length === 0 && !thread.error;

  return (
    <div className="message-area">
      <div
        className="message-scroller"
        ref={scroller}
        onScroll={onScroll}
        data-testid="message-list"
        role="log"
        aria-live="polite"
        aria-relevant="additions"
        aria-label={`Messages with ${peer.username}`}
        aria-busy={thread.loading || thread.loadingOlder}
        tabIndex={0}
      >
        <div className="history-edge">
          {thread.loadingOlder ? (
            <span data-testid="history-loading" className="history-loading">
              <Spinner label="Loading older messages" size={16} />
            </span>
          ) : thread.loaded && !thread.hasMore && !empty ? (
            <div className="history-start" data-testid="history-start">
              <Avatar name={peer.username} id={peer.id} size={48} />
              <p>This is the beginning of your conversation with <strong>{peer.username}</strong>.</p>
            </div>
          ) : null}
        </div>

        {thread.error && (
          <div className="thread-error" role="alert">
            <AlertCircle size={16} aria-hidden="true" />
            <span>{thread.error}</span>
            <button type="button" className="link-button" onClick={onReload}>Try again</button>
          </div>
        )}

        {initialLoading && (
          <div className="thread-loading" data-testid="thread-loading">
            {[58, 34, 46, 28, 52].map((width, i) => (
              <span key={i} className={`skeleton-bubble ${i % 2 ? 'right' : ''}`} style={{ width: `${width}%` }} />
            ))}
            <Spinner label="Loading messages" />
          </div>
        )}

        {empty && (
          <div className="thread-empty" data-testid="thread-empty">
            <span className="thread-empty-icon"><MessageCircle size={28} aria-hidden="true" /></span>
            <p className="thread-empty-title">No messages yet</p>
            <p className="muted">Say hello to {peer.username}. Messages are delivered the moment they are online.</p>
          </div>
        )}

        <ol className="messages">
          {rows.map((row) =>
            row.type === 'day' ? (
              <li key={row.key} className="day-separator" role="separator">
                <span>{row.label}</span>
              </li>
            ) : (
              <MessageBubble
                key={row.key}
                row={row}
                mine={row.message.senderId === myId}
                peer={peer}
                onRetry={onRetry}
              />
            ),
          )}
        </ol>
      </div>
      {awayFromBottom && (
        <button type="button" className="jump-latest" onClick={jumpToLatest} aria-label="Jump to the latest message">
          <ArrowDown size={18} aria-hidden="true" />
        </button>
      )}
    </div>
  );
}
