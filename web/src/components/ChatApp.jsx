import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { AnimatePresence, motion } from 'framer-motion';
import { MessagesSquare, WifiOff, X } from 'lucide-react';
import { useChat } from '../hooks/useChat.js';
import { usePeopleSearch } from '../hooks/usePeopleSearch.js';
import { usePrefs } from '../hooks/usePrefs.js';
import { totalUnread } from '../lib/chatState.js';
import { sidebarEntries } from '../lib/conversations.js';
import { parseKey, roomKey } from '../lib/keys.js';
import { alertsFor, notificationContent } from '../lib/notify.js';
import { emptyThread } from '../lib/pagination.js';
import { isMuted, setMuted } from '../lib/prefs.js';
import { directReceipts, seenBy } from '../lib/receipts.js';
import { typingLine, typingNames } from '../lib/typing.js';
import { loadActivePeer, saveActivePeer } from '../session.js';
import { playTone, primeSound } from '../sound.js';
import { ChatPane } from './ChatPane.jsx';
import { NewChatDialog } from './NewChatDialog.jsx';
import { NewGroupDialog } from './NewGroupDialog.jsx';
import { RoomDialog } from './RoomDialog.jsx';
import { SettingsDialog } from './SettingsDialog.jsx';
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

function Notice({ text, onDismiss }) {
  if (!text) return null;
  return (
    <div className="notice" role="status" data-testid="notice">
      <span>{text}</span>
      <button type="button" className="icon-button" onClick={onDismiss} aria-label="Dismiss">
        <X size={16} aria-hidden="true" />
      </button>
    </div>
  );
}

function EmptyPane({ me }) {
  return (
    <div className="empty-pane">
      <span className="empty-pane-icon"><MessagesSquare size={32} aria-hidden="true" /></span>
      <h2>Hi {me.username}</h2>
      <p className="muted">Pick a conversation on the left, or start a new chat or group.</p>
    </div>
  );
}

const finePointer = () => window.matchMedia?.('(pointer: fine)').matches ?? true;
/** `?debug` shows which server instance answered, in the sidebar (it is always in Settings → About). */
const debugMode = () => new URLSearchParams(window.location.search).has('debug');

function notificationPermission() {
  return typeof Notification === 'undefined' ? 'unsupported' : Notification.permission;
}

/** The signed-in app: sidebar, open conversation, dialogs, notifications and connection status. */
export function ChatApp({ session, theme, onToggleTheme, onSignOut, onExpired }) {
  const { token, user: me } = session;
  const [initialKey] = useState(loadActivePeer);
  const [prefs, updatePrefs] = usePrefs(me.id);
  const [permission, setPermission] = useState(notificationPermission);
  const [debug] = useState(debugMode);
  const [dialog, setDialog] = useState(null);
  const [query, setQuery] = useState('');
  const [drafts, setDrafts] = useState({});

  // Set below once the chat exists; a notification's click opens its conversation through it.
  const openRef = useRef(null);
  const lookup = useRef(null);

  const onLiveMessage = useCallback(
    (message, key) => {
      const hidden = document.visibilityState === 'hidden';
      const alerts = alertsFor({
        message,
        myId: me.id,
        hidden,
        muted: isMuted(prefs, key),
        notifications: prefs.notifications,
        permission: notificationPermission(),
        sound: prefs.sound,
      });
      if (alerts.sound) playTone();
      if (!alerts.notify) return;
      const { senderName, roomName } = lookup.current?.(message) ?? {};
      const content = notificationContent({ message, key, senderName, roomName });
      try {
        const notification = new Notification(content.title, { body: content.body, tag: content.tag });
        notification.onclick = () => {
          window.focus();
          openRef.current?.(key);
          notification.close();
        };
      } catch {
        // Some browsers only allow notifications from a service worker; the badge still counts it.
      }
    },
    [me.id, prefs, lookup, openRef],
  );

  const chat = useChat({ token, me, initialKey, onUnauthorized: onExpired, onLiveMessage });
  const { state, open, send, retry, loadOlder, reload, typed, stoppedTyping, rememberUsers } = chat;
  const { activeKey } = state;
  const active = parseKey(activeKey);

  useEffect(() => {
    openRef.current = open;
    lookup.current = (message) => ({
      senderName: message.senderUsername ?? state.users[message.senderId]?.username,
      roomName: message.roomId ? state.rooms[message.roomId]?.name ?? state.conversations.find((c) => c.key === roomKey(message.roomId))?.room.name : undefined,
    });
  });

  const known = useMemo(() => {
    const people = new Map();
    for (const entry of state.conversations) if (entry.peer) people.set(entry.peer.id, { ...entry.peer, online: state.online.has(entry.peer.id) });
    for (const user of state.onlineUsers) if (state.online.has(user.id)) people.set(user.id, { id: user.id, username: user.username, online: true });
    return [...people.values()];
  }, [state.conversations, state.onlineUsers, state.online]);

  const search = usePeopleSearch(token, query, { known, myId: me.id, enabled: query.trim().length > 0 });

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
        directory: search.directory ? search.results : null,
      }),
    [state.conversations, state.onlineUsers, state.online, state.presenceReady, state.unread, me.id, query, search.directory, search.results],
  );

  const conversation = useMemo(() => {
    if (!active) return null;
    if (active.kind === 'room') {
      const room = state.rooms[active.roomId];
      const entry = state.conversations.find((item) => item.key === activeKey);
      if (!room && !entry) return null;
      return {
        key: activeKey,
        kind: 'room',
        id: active.roomId,
        title: room?.name ?? entry.room.name,
        memberCount: room?.members?.length ?? entry?.room.memberCount ?? 0,
        room: room ?? null,
      };
    }
    const entry = state.conversations.find((item) => item.key === activeKey);
    const username = state.users[activeKey]?.username ?? entry?.peer.username;
    if (!username) return null;
    const online = state.presenceReady ? state.online.has(activeKey) : Boolean(entry?.peer.online);
    return { key: activeKey, kind: 'direct', id: activeKey, title: username, online };
  }, [active, activeKey, state.conversations, state.users, state.rooms, state.online, state.presenceReady]);

  useEffect(() => {
    saveActivePeer(activeKey);
  }, [activeKey]);

  const muted = useCallback((key) => isMuted(prefs, key), [prefs]);
  const unreadTotal = totalUnread(state.unread, muted);
  useEffect(() => {
    document.title = unreadTotal ? `(${unreadTotal}) Nexus Chat` : 'Nexus Chat';
  }, [unreadTotal]);

  useEffect(() => {
    // Audio may only start after a gesture: the first click of the page primes the sound.
    if (!prefs.sound) return undefined;
    const prime = () => primeSound();
    window.addEventListener('pointerdown', prime, { once: true });
    return () => window.removeEventListener('pointerdown', prime);
  }, [prefs.sound]);

  const typingOf = useCallback((key) => typingLine(typingNames(state.typing, key)), [state.typing]);

  const thread = (activeKey && state.threads[activeKey]) || emptyThread();
  const loadingSidebar = !state.conversationsLoaded && !state.presenceReady;

  const receipts = useMemo(
    () => (conversation?.kind === 'direct' ? directReceipts(thread.messages, me.id, state.reads[activeKey]?.[activeKey]) : {}),
    [conversation?.kind, thread.messages, me.id, state.reads, activeKey],
  );
  const seen = useMemo(
    () => (conversation?.kind === 'room' ? seenBy(thread.messages, me.id, state.reads[activeKey], conversation.room?.members ?? []) : null),
    [conversation, thread.messages, me.id, state.reads, activeKey],
  );

  function openRow(row) {
    if (row.section === 'people') {
      rememberUsers([row]);
      setQuery('');
    }
    open(row.key);
  }

  function startChat(user) {
    rememberUsers([user]);
    setDialog(null);
    open(user.id);
  }

  async function createGroup(name, memberIds) {
    const room = await chat.createRoom(name, memberIds);
    setDialog(null);
    open(roomKey(room.id));
  }

  async function toggleNotifications(want) {
    if (!want) {
      updatePrefs((current) => ({ ...current, notifications: false }));
      return;
    }
    let result = notificationPermission();
    if (result === 'default') {
      try {
        result = await Notification.requestPermission();
      } catch {
        result = notificationPermission();
      }
    }
    setPermission(result);
    updatePrefs((current) => ({ ...current, notifications: result === 'granted' }));
  }

  function toggleSound(on) {
    if (on) primeSound();
    updatePrefs((current) => ({ ...current, sound: on }));
  }

  const draftKey = conversation?.key;
  const activeRoom = conversation?.kind === 'room' ? conversation.room ?? { id: conversation.id, name: conversation.title, members: [] } : null;

  return (
    <div className={`app${conversation ? ' has-active' : ''}`}>
      <ConnectionBanner connection={state.connection} />
      <Notice text={state.notice} onDismiss={chat.dismissNotice} />
      <Sidebar
        me={me}
        rows={rows}
        names={state.users}
        loading={loadingSidebar}
        searching={search.loading}
        activeKey={activeKey}
        onOpen={openRow}
        query={query}
        onQuery={setQuery}
        typingOf={typingOf}
        isMuted={muted}
        onNewChat={() => setDialog('new-chat')}
        onNewGroup={() => setDialog('new-group')}
        onSettings={() => setDialog('settings')}
        debug={debug}
        instance={state.instance}
        connection={state.connection}
        theme={theme}
        onToggleTheme={onToggleTheme}
        onSignOut={onSignOut}
      />
      <main className="pane">
        {conversation ? (
          <ChatPane
            conversation={conversation}
            thread={thread}
            me={me}
            names={state.users}
            receipts={receipts}
            seen={seen}
            marker={state.marker?.key === activeKey ? state.marker : null}
            typing={typingOf(activeKey)}
            muted={muted(activeKey)}
            onToggleMute={() => updatePrefs((current) => setMuted(current, activeKey, !isMuted(current, activeKey)))}
            onShowRoom={() => setDialog('room')}
            draft={drafts[draftKey] ?? ''}
            onDraft={(text) => {
              setDrafts((all) => ({ ...all, [draftKey]: text }));
              typed(draftKey, text);
            }}
            onTypingStop={stoppedTyping}
            onSend={(text) => {
              send(draftKey, text);
              setDrafts((all) => ({ ...all, [draftKey]: '' }));
            }}
            onRetry={(clientMsgId) => retry(draftKey, clientMsgId)}
            onLoadOlder={() => loadOlder(draftKey)}
            onReload={() => reload(draftKey)}
            onBack={() => open(null)}
            autoFocus={finePointer()}
          />
        ) : activeKey && !state.conversationsLoaded ? (
          <div className="empty-pane"><Spinner label="Loading conversation" /></div>
        ) : (
          <EmptyPane me={me} />
        )}
      </main>

      {dialog === 'new-chat' && <NewChatDialog token={token} myId={me.id} known={known} onPick={startChat} onClose={() => setDialog(null)} />}
      {dialog === 'new-group' && (
        <NewGroupDialog token={token} myId={me.id} known={known} onCreate={createGroup} onClose={() => setDialog(null)} />
      )}
      {dialog === 'room' && activeRoom && (
        <RoomDialog
          token={token}
          me={me}
          room={activeRoom}
          online={state.online}
          known={known}
          onRename={(name) => chat.renameRoom(activeRoom.id, name)}
          onAdd={(userIds) => chat.addMembers(activeRoom.id, userIds)}
          onRemove={(userId) => chat.removeMember(activeRoom.id, userId)}
          onLeave={async () => {
            await chat.leaveRoom(activeRoom.id);
            setDialog(null);
          }}
          onClose={() => setDialog(null)}
        />
      )}
      {dialog === 'settings' && (
        <SettingsDialog
          prefs={prefs}
          permission={permission}
          onNotifications={toggleNotifications}
          onSound={toggleSound}
          instance={state.instance}
          connection={state.connection}
          onClose={() => setDialog(null)}
        />
      )}
    </div>
  );
}
