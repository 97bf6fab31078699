import { useLayoutEffect, useMemo, useRef, useState } from 'react';
import { motion } from 'framer-motion';
import { AlertCircle, ArrowDown, Check, CheckCheck, Clock, MessageCircle, RotateCw } from 'lucide-react';
import { avatarHue, buildTimeline, formatFull, formatTime } from '../lib/format.js';
import { Avatar } from './Avatar.jsx';
import { Spinner } from './Spinner.jsx';

/** Start fetching the previous page this close to the top, before the user actually hits it. */
const LOAD_OLDER_THRESHOLD_PX = 400;
const NEAR_BOTTOM_PX = 120;

const STATUS_LABEL = { pending: 'Sending', sent: 'Sent', read: 'Read', failed: 'Not sent' };

function StatusIcon({ status, receipt }) {
  if (status === 'pending') return <Clock size={12} role="img" aria-label={STATUS_LABEL.pending} />;
  if (status === 'failed') return <AlertCircle size={12} role="img" aria-label={STATUS_LABEL.failed} />;
  if (receipt === 'read') return <CheckCheck size={13} role="img" aria-label={STATUS_LABEL.read} className="tick read" />;
  return <Check size={12} role="img" aria-label={STATUS_LABEL.sent} className="tick" />;
}

/** "Seen by N" under the caller's latest message in a room; the names show on hover and focus. */
function SeenBy({ viewers }) {
  if (!viewers.length) return null;
  const names = viewers.map((member) => member.username).join(', ');
  return (
    <span className="seen-by" tabIndex={0} data-testid="seen-by" data-count={viewers.length} aria-label={`Seen by ${names}`}>
      Seen by {viewers.length}
      <span className="seen-by-names" role="tooltip" aria-hidden="true">{names}</span>
    </span>
  );
}

function MessageBubble({ row, mine, sender, showSender, receipt, viewers, onRetry }) {
  const { message, first, last } = row;
  return (
    <motion.li
      className={`message-row ${mine ? 'mine' : 'theirs'}${first ? ' first' : ''}${last ? ' last' : ''}`}
      data-testid="message"
      data-status={message.status}
      data-receipt={mine && message.status === 'sent' && receipt ? receipt : undefined}
      data-id={message.id ?? ''}
      data-client-msg-id={message.clientMsgId ?? ''}
      data-sender={sender.username}
      initial={message.live ? { opacity: 0, y: 12, scale: 0.97 } : false}
      animate={{ opacity: 1, y: 0, scale: 1 }}
      transition={{ type: 'spring', stiffness: 520, damping: 34, mass: 0.6 }}
    >
      {!mine && (last ? <Avatar name={sender.username} id={sender.id} size={28} /> : <span className="avatar-spacer" />)}
      <div className="message-stack">
        {showSender && first && !mine && (
          <span className="sender-name" data-testid="sender-name" style={{ '--hue': avatarHue(sender.id) }}>{sender.username}</span>
        )}
        <div className={`bubble${message.status === 'failed' ? ' failed' : ''}${message.status === 'pending' ? ' pending' : ''}`}>
          {showSender && !mine && <span className="visually-hidden">{sender.username}: </span>}
          <p className="bubble-text">{message.content}</p>
          <span className="bubble-meta">
            <time dateTime={message.createdAt} title={formatFull(message.createdAt)}>{formatTime(message.createdAt)}</time>
            {mine && <StatusIcon status={message.status} receipt={receipt} />}
          </span>
        </div>
        {viewers && <SeenBy viewers={viewers} />}
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
export function MessageList({ thread, conversation, myId, names = {}, receipts = {}, seen = null, marker = null, onLoadOlder, onRetry, onReload }) {
  const isRoom = conversation.kind === 'room';
  const title = conversation.title;
  const senderOf = (message) => {
    if (!isRoom) return message.senderId === myId ? { id: myId, username: '' } : { id: conversation.id, username: title };
    const username = message.senderUsername ?? names[message.senderId]?.username ?? 'Former member';
    return { id: message.senderId, username };
  };
  const scroller = useRef(null);
  const anchor = useRef(null);
  const shownDivider = useRef(null);
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
    if (!prev || prev.key !== conversation.key) {
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
    const dividerId = marker?.firstUnreadId;
    if (dividerId && shownDivider.current !== dividerId) {
      const divider = el.querySelector('[data-testid="unread-divider"]');
      if (divider) {
        shownDivider.current = dividerId;
        // Open at the first unread message when the unread ones do not all fit on the screen.
        const top = divider.offsetTop - 12;
        if (top < el.scrollTop) {
          el.scrollTop = top;
          nearBottom = false;
        }
      }
    }
    anchor.current = { key: conversation.key, firstKey, lastKey, scrollHeight: el.scrollHeight, scrollTop: el.scrollTop, nearBottom };
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
        aria-label={isRoom ? `Messages in ${title}` : `Messages with ${title}`}
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
              <Avatar name={title} id={conversation.id} size={48} />
              {isRoom ? (
                <p>This is the beginning of the group <strong>{title}</strong>.</p>
              ) : (
                <p>This is the beginning of your conversation with <strong>{title}</strong>.</p>
              )}
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
            <p className="muted">
              {isRoom ? `Say hello to the group. Everyone in ${title} sees the whole history.` : `Say hello to ${title}. Messages are delivered the moment they are online.`}
            </p>
          </div>
        )}

        <ol className="messages">
          {rows.map((row) => {
            if (row.type === 'day') {
              return (
                <li key={row.key} className="day-separator" role="separator">
                  <span>{row.label}</span>
                </li>
              );
            }
            const { message } = row;
            const bubble = (
              <MessageBubble
                key={row.key}
                row={row}
                mine={message.senderId === myId}
                sender={senderOf(message)}
                showSender={isRoom}
                receipt={message.id ? receipts[message.id] : undefined}
                viewers={seen && message.id === seen.messageId ? seen.viewers : null}
                onRetry={onRetry}
              />
            );
            if (!marker?.firstUnreadId || message.id !== marker.firstUnreadId) return bubble;
            return [
              <li key={`unread-${message.id}`} className="unread-divider" role="separator" aria-label="New messages" data-testid="unread-divider">
                <span>New messages</span>
              </li>,
              bubble,
            ];
          })}
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
