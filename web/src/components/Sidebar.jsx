import { useId } from 'react';
import { BellOff, LogOut, MessageSquarePlus, Moon, Search, Settings, Sun, Users } from 'lucide-react';
import { formatShortDate, previewText } from '../lib/format.js';
import { Avatar } from './Avatar.jsx';
import { InstanceIndicator } from './SettingsDialog.jsx';

function SidebarSkeleton() {
  return (
    <ul className="user-list" aria-hidden="true">
      {[0, 1, 2, 3].map((i) => (
        <li key={i} className="user-row skeleton">
          <span className="skeleton-avatar" />
          <span className="skeleton-lines">
            <span className="skeleton-line" style={{ width: `${60 - i * 8}%` }} />
            <span className="skeleton-line short" />
          </span>
        </li>
      ))}
    </ul>
  );
}

/** A room avatar: the room's initials on a rounded square, so groups and people look different. */
export function RoomAvatar({ name, id, size = 42 }) {
  return (
    <span className="room-avatar">
      <Avatar name={name} id={id} size={size} />
      <Users size={Math.round(size * 0.32)} className="room-avatar-mark" aria-hidden="true" />
    </span>
  );
}

function preview(row, me, names) {
  const message = row.lastMessage;
  if (!message) {
    if (row.kind === 'room') return 'No messages yet';
    return row.online ? 'Online · say hello' : 'Offline';
  }
  if (row.kind === 'room' && message.senderId !== me.id) {
    const sender = message.senderUsername ?? names[message.senderId]?.username;
    return sender ? `${sender}: ${previewText(message, me.id)}` : previewText(message, me.id);
  }
  return previewText(message, me.id);
}

function Row({ row, me, names, active, typing, muted, onOpen }) {
  const title = row.kind === 'room' ? row.name : row.username;
  const parts = [
    row.kind === 'room' ? `Group ${title}, ${row.memberCount} ${row.memberCount === 1 ? 'member' : 'members'}` : `${title}, ${row.online ? 'online' : 'offline'}`,
    row.unread ? `${row.unread} unread` : null,
    typing || null,
    muted ? 'muted' : null,
  ].filter(Boolean);
  const testing =
    row.kind === 'room'
      ? { 'data-testid': 'room-row', 'data-room-id': row.id, 'data-room-name': row.name, 'data-members': String(row.memberCount) }
      : { 'data-testid': `user-${row.username}`, 'data-online': String(row.online), 'data-user-id': row.id };
  return (
    <li>
      <button
        type="button"
        className={`user-row${active ? ' active' : ''}`}
        onClick={() => onOpen(row)}
        {...testing}
        aria-current={active ? 'true' : undefined}
        aria-label={parts.join(', ')}
      >
        {row.kind === 'room' ? <RoomAvatar name={row.name} id={row.id} /> : <Avatar name={row.username} id={row.id} size={42} online={row.online} />}
        <span className="user-row-body">
          <span className="user-row-top">
            <span className="user-name">{title}</span>
            {row.kind === 'room' && <span className="member-count" aria-hidden="true">{row.memberCount}</span>}
            {muted && <BellOff size={12} className="muted-icon" aria-hidden="true" />}
            {row.lastMessage && <time className="user-time" dateTime={row.lastMessage.createdAt}>{formatShortDate(row.lastMessage.createdAt)}</time>}
          </span>
          <span className="user-row-bottom">
            {typing ? (
              <span className="user-preview typing-preview" data-testid="row-typing">{typing}</span>
            ) : (
              <span className="user-preview">{preview(row, me, names)}</span>
            )}
            {row.unread > 0 && (
              <span className={`unread${muted ? ' muted' : ''}`} aria-hidden="true" data-testid="unread-badge">
                {row.unread > 99 ? '99+' : row.unread}
              </span>
            )}
          </span>
        </span>
      </button>
    </li>
  );
}

/**
 * Direct chats and groups (most recent first), people to start a chat with, the search box (which
 * also searches the user directory), and the account header.
 */
export function Sidebar({
  me,
  rows,
  names,
  loading,
  searching,
  activeKey,
  onOpen,
  query,
  onQuery,
  typingOf,
  isMuted,
  onNewChat,
  onNewGroup,
  onSettings,
  debug,
  instance,
  connection,
  theme,
  onToggleTheme,
  onSignOut,
}) {
  const searchId = useId();
  const chats = rows.filter((row) => row.section === 'chats');
  const people = rows.filter((row) => row.section === 'people');
  const renderRow = (row) => (
    <Row
      key={row.key}
      row={row}
      me={me}
      names={names}
      active={row.key === activeKey}
      typing={typingOf(row.key)}
      muted={isMuted(row.key)}
      onOpen={onOpen}
    />
  );
  return (
    <aside className="sidebar" aria-label="Conversations">
      <header className="sidebar-header">
        <Avatar name={me.username} id={me.id} size={36} />
        <div className="me">
          <span className="me-name" data-testid="current-user">{me.username}</span>
          {debug && <InstanceIndicator instance={instance} connection={connection} />}
        </div>
        <button type="button" className="icon-button" onClick={onSettings} aria-label="Settings" title="Settings" data-testid="settings-button">
          <Settings size={18} aria-hidden="true" />
        </button>
        <button
          type="button"
          className="icon-button"
          onClick={onToggleTheme}
          aria-label={theme === 'dark' ? 'Switch to light theme' : 'Switch to dark theme'}
          title={theme === 'dark' ? 'Light theme' : 'Dark theme'}
        >
          {theme === 'dark' ? <Sun size={18} aria-hidden="true" /> : <Moon size={18} aria-hidden="true" />}
        </button>
        <button type="button" className="icon-button" onClick={onSignOut} aria-label="Sign out" title="Sign out" data-testid="sign-out">
          <LogOut size={18} aria-hidden="true" />
        </button>
      </header>

      <div className="sidebar-actions">
        <button type="button" className="secondary-button" onClick={onNewChat} data-testid="new-chat">
          <MessageSquarePlus size={16} aria-hidden="true" /> New chat
        </button>
        <button type="button" className="secondary-button" onClick={onNewGroup} data-testid="new-group">
          <Users size={16} aria-hidden="true" /> New group
        </button>
      </div>

      <div className="search">
        <label htmlFor={searchId} className="visually-hidden">Search chats and people</label>
        <Search size={16} aria-hidden="true" className="search-icon" />
        <input
          id={searchId}
          type="search"
          placeholder="Search chats and people"
          value={query}
          onChange={(e) => onQuery(e.target.value)}
          data-testid="user-search"
          autoComplete="off"
        />
      </div>

      <nav className="sidebar-list" aria-label="Chats" aria-busy={searching}>
        {loading ? (
          <SidebarSkeleton />
        ) : rows.length === 0 ? (
          <div className="sidebar-empty">
            <Users size={28} aria-hidden="true" />
            <p>{query ? (searching ? 'Searching…' : 'Nobody matches that search.') : 'No conversations yet.'}</p>
            {!query && <p className="muted">Start one with “New chat”, or wait for people to come online.</p>}
          </div>
        ) : (
          <>
            {chats.length > 0 && (
              <ul className="user-list" data-testid="user-list" aria-label="Chats">
                {chats.map(renderRow)}
              </ul>
            )}
            {people.length > 0 && (
              <>
                {query && <h3 className="list-heading" id={`${searchId}-people`}>People</h3>}
                <ul className="user-list" data-testid="people-list" aria-label={query ? 'People' : 'Online now'}>
                  {people.map(renderRow)}
                </ul>
              </>
            )}
          </>
        )}
      </nav>
    </aside>
  );
}
