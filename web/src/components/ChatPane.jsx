import { ArrowLeft } from 'lucide-react';
import { Avatar } from './Avatar.jsx';
import { Composer } from './Composer.jsx';
import { MessageList } from './MessageList.jsx';

/** One open conversation: header, message list and composer. */
export function ChatPane({ peer, thread, myId, draft, onDraft, onSend, onRetry, onLoadOlder, onReload, onBack, autoFocus }) {
  function onKeyDown(event) {
    if (event.key === 'Escape' && !(event.target instanceof HTMLTextAreaElement && event.target.value)) onBack();
  }

  return (
    <section className="chat-pane" data-testid="conversation-pane" data-peer={peer.username} aria-label={`Conversation with ${peer.username}`} onKeyDown={onKeyDown}>
      <header className="chat-header">
        <button type="button" className="icon-button back-button" onClick={onBack} aria-label="Back to conversations">
          <ArrowLeft size={20} aria-hidden="true" />
        </button>
        <Avatar name={peer.username} id={peer.id} size={38} online={peer.online} />
        <div className="chat-title">
          <h2 data-testid="chat-title">{peer.username}</h2>
          <span className={`chat-status${peer.online ? ' online' : ''}`} data-testid="peer-status">
            {peer.online ? 'Online' : 'Offline'}
          </span>
        </div>
      </header>
      <MessageList
        key={peer.id}
        thread={thread}
        peer={peer}
        myId={myId}
        onLoadOlder={onLoadOlder}
        onRetry={onRetry}
        onReload={onReload}
      />
      <Composer key={`composer-${peer.id}`} peerName={peer.username} value={draft} onChange={onDraft} onSend={onSend} autoFocus={autoFocus} />
    </section>
  );
}
