import { ArrowLeft, Bell, BellOff, Users } from 'lucide-react';
import { Avatar } from './Avatar.jsx';
import { Composer } from './Composer.jsx';
import { MessageList } from './MessageList.jsx';
import { RoomAvatar } from './Sidebar.jsx';

/**
 * One open conversation: header (who or which group, presence or member count, who is typing,
 * mute), message list and composer. `conversation` is `{key, kind, id, title, online?, room?}`.
 */
export function ChatPane({
  conversation,
  thread,
  me,
  names,
  receipts,
  seen,
  marker,
  typing,
  muted,
  onToggleMute,
  onShowRoom,
  draft,
  onDraft,
  onTypingStop,
  onSend,
  onRetry,
  onLoadOlder,
  onReload,
  onBack,
  autoFocus,
}) {
  const { kind, title } = conversation;
  const isRoom = kind === 'room';
  const memberCount = conversation.room?.members?.length ?? conversation.memberCount ?? 0;

  function onKeyDown(event) {
    if (event.key === 'Escape' && !event.defaultPrevented && !(event.target instanceof HTMLTextAreaElement && event.target.value)) onBack();
  }

  const status = typing ? (
    <span className="chat-status typing" data-testid="typing-indicator" aria-live="polite">{typing}</span>
  ) : isRoom ? (
    <span className="chat-status" data-testid="room-members-count">{memberCount} {memberCount === 1 ? 'member' : 'members'}</span>
  ) : (
    <span className={`chat-status${conversation.online ? ' online' : ''}`} data-testid="peer-status">
      {conversation.online ? 'Online' : 'Offline'}
    </span>
  );

  return (
    <section
      className="chat-pane"
      data-testid="conversation-pane"
      data-kind={kind}
      data-peer={isRoom ? undefined : title}
      data-room={isRoom ? title : undefined}
      aria-label={isRoom ? `Group ${title}` : `Conversation with ${title}`}
      onKeyDown={onKeyDown}
    >
      <header className="chat-header">
        <button type="button" className="icon-button back-button" onClick={onBack} aria-label="Back to conversations">
          <ArrowLeft size={20} aria-hidden="true" />
        </button>
        {isRoom ? (
          <button type="button" className="chat-header-main" onClick={onShowRoom} aria-label={`Group details: ${title}, ${memberCount} members`} data-testid="room-details">
            <RoomAvatar name={title} id={conversation.id} size={38} />
            <span className="chat-title">
              <h2 data-testid="chat-title">{title}</h2>
              {status}
            </span>
          </button>
        ) : (
          <div className="chat-header-main">
            <Avatar name={title} id={conversation.id} size={38} online={conversation.online} />
            <div className="chat-title">
              <h2 data-testid="chat-title">{title}</h2>
              {status}
            </div>
          </div>
        )}
        <span className="chat-header-actions">
          {isRoom && (
            <button type="button" className="icon-button" onClick={onShowRoom} aria-label="Members" title="Members" data-testid="room-members">
              <Users size={18} aria-hidden="true" />
            </button>
          )}
          <button
            type="button"
            className="icon-button"
            onClick={onToggleMute}
            aria-pressed={muted}
            aria-label={muted ? 'Unmute notifications' : 'Mute notifications'}
            title={muted ? 'Unmute' : 'Mute'}
            data-testid="mute-toggle"
          >
            {muted ? <BellOff size={18} aria-hidden="true" /> : <Bell size={18} aria-hidden="true" />}
          </button>
        </span>
      </header>
      <MessageList
        key={conversation.key}
        thread={thread}
        conversation={conversation}
        myId={me.id}
        names={names}
        receipts={receipts}
        seen={seen}
        marker={marker}
        onLoadOlder={onLoadOlder}
        onRetry={onRetry}
        onReload={onReload}
      />
      <Composer
        key={`composer-${conversation.key}`}
        peerName={title}
        value={draft}
        onChange={onDraft}
        onBlur={onTypingStop}
        onSend={onSend}
        autoFocus={autoFocus}
      />
    </section>
  );
}
