import { useEffect, useMemo, useState } from 'react';
import { AnimatePresence, motion } from 'framer-motion';
import { MessagesSquare, WifiOff } from 'lucide-react';
import { useChat } from '../hooks/useChat.js';
import { sidebarEntries } from '../lib/conversations.js';
import { emptyThread } from '../lib/pagination.js';
import { loadActivePeer, saveActivePeer } from '../session.js';
import { ChatPane } from './ChatPane.jsx';
import { Sidebar } from './Sidebar.jsx';
import { Spinner } from './Spinner.jsx';

function ConnectionBanner({ connection }) {
  return (
    <AnimatePresence>
      {connection !== 'online' && (
        <motion.div
          className={`connection-banner ${connection}`}
          role="status"
          data-testid={connection === 'reconnecting' ? 'reconnecting-banner' : 'connecting-banner'}
          initial={{ opacity: 0, y: -12 }}
          animate={{ opacity: 1, y: 0 }}
          exit={{ opacity: 0, y: -12 }}
        >
          {connection === 'reconnecting' ? <WifiOff size={14} aria-hidden="true" /> : <Spinner label="" size={12} />}
          <span>{connection === 'reconnecting' ? 'Reconnecting…' : 'Connecting…'}</span>
        </motion.div>
      )}
    </AnimatePresence>
  );
}

function EmptyPane({ me }) {
  return (
    <div className="empty-pane">
      <span className="empty-pane-icon"><MessagesSquare size={32} aria-hidden="true" /></span>
      <h2>Hi {me.username}</h2>
      <p className="muted">Pick someone on the left to start chatting.</p>
    </div>
  );
}

const finePointer = () => window.matchMedia?.('(pointer: fine)').matches ?? true;

/** The signed-in app: sidebar, open conversation and connection status. */
export function ChatApp({ session, theme, onToggleTheme, onSignOut, onExpired }) {
  const { token, user: me } = session;
  const [initialPeerId] = useState(loadActivePeer);
  const { state, open, send, retry, loadOlder, reload } = useChat({ token, me, initialPeerId, onUnauthorized: onExpired });
  const [query, setQuery] = useState('');
  const [drafts, setDrafts] = useState({});
  const { activePeerId } = state;

  const rows = useMemo(
    () =>
      sidebarEntries({
        conversations: state.conversations,
        onlineUsers: state.onlineUsers,
        online: state.online,
        presenceReady: state.presenceReady,
        myId: me.id,
        unread: state.unread,
        query,
      }),
    [state.conversations, state.onlineUsers, state.online, state.presenceReady, state.unread, me.id, query],
  );

  const peer = useMemo(() => {
    if (!activePeerId) return null;
    const conversation = state.conversations.find((item) => item.peer.id === activePeerId);
    const username = state.users[activePeerId]?.username ?? conversation?.peer.username;
    if (!username) return null;
    const online = state.presenceReady ? state.online.has(activePeerId) : Boolean(conversation?.peer.online);
    return { id: activePeerId, username, online };
  }, [activePeerId, state.conversations, state.users, state.online, state.presenceReady]);

  useEffect(() => {
    saveActivePeer(activePeerId);
  }, [activePeerId]);

  const unreadTotal = Object.values(state.unread).reduce((sum, n) => sum + n, 0);
  useEffect(() => {
    document.title = unreadTotal ? `(${unreadTotal}) Nexus Chat` : 'Nexus Chat';
  }, [unreadTotal]);

  const thread = (activePeerId && state.threads[activePeerId]) || emptyThread();
  const loadingSidebar = !state.conversationsLoaded && !state.presenceReady;

  return (
    <div className={`app${peer ? ' has-active' : ''}`}>
      <ConnectionBanner connection={state.connection} />
      <Sidebar
        me={me}
        rows={rows}
        loading={loadingSidebar}
        activePeerId={activePeerId}
        onOpen={open}
        query={query}
        onQuery={setQuery}
        instance={state.instance}
        connection={state.connection}
        theme={theme}
        onToggleTheme={onToggleTheme}
        onSignOut={onSignOut}
      />
      <main className="pane">
        {peer ? (
          <ChatPane
            peer={peer}
            thread={thread}
            myId={me.id}
            draft={drafts[peer.id] ?? ''}
            onDraft={(text) => setDrafts((all) => ({ ...all, [peer.id]: text }))}
            onSend={(text) => {
              send(peer.id, text);
              setDrafts((all) => ({ ...all, [peer.id]: '' }));
            }}
            onRetry={(clientMsgId) => retry(peer.id, clientMsgId)}
            onLoadOlder={() => loadOlder(peer.id)}
            onReload={() => reload(peer.id)}
            onBack={() => open(null)}
            autoFocus={finePointer()}
          />
        ) : activePeerId && !state.conversationsLoaded ? (
          <div className="empty-pane"><Spinner label="Loading conversation" /></div>
        ) : (
          <EmptyPane me={me} />
        )}
      </main>
    </div>
  );
}
