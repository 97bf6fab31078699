import { useId } from 'react';
import { LogOut, Moon, Search, Server, Sun, Users } from 'lucide-react';
import { formatShortDate, previewText } from '../lib/format.js';
import { Avatar } from './Avatar.jsx';

function InstanceIndicator({ instance, connection }) {
  const label = instance
    ? `Connected to instance ${instance.instanceId}${instance.version ? `, version ${instance.version}` : ''}`
    : 'Instance unknown';
  return (
    <span
      className="instance"
      data-testid="instance-indicator"
      data-instance-id={instance?.instanceId ?? ''}
      data-connection={connection}
      title={label}
      aria-label={label}
    >
      <Server size={12} aria-hidden="true" />
      <span className="instance-id">{instance ? shortId(instance.instanceId) : '…'}</span>
      {instance?.version && <span className="instance-version">v{instance.version}</span>}
    </span>
  );
}

function shortId(id) {
  const text = String(id ?? '');
  return text.length > 12 ? text.slice(0, 8) : text;
}

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

/** The user's conversations and the online users, with the account header and the search box. */
export function Sidebar({ me, rows, loading, activePeerId, onOpen, query, onQuery, instance, connection, theme, onToggleTheme, onSignOut }) {
  const searchId = useId();
  return (
    <aside className="sidebar" aria-label="Conversations">
      <header className="sidebar-header">
        <Avatar name={me.username} id={me.id} size={36} />
        <div className="me">
          <span className="me-name" data-testid="current-user">{me.username}</span>
          <InstanceIndicator instance={instance} connection={connection} />
        </div>
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

      <div className="search">
        <label htmlFor={searchId} className="visually-hidden">Search people</label>
        <Search size={16} aria-hidden="true" className="search-icon" />
        <input
          id={searchId}
          type="search"
          placeholder="Search people"
          value={query}
          onChange={(e) => onQuery(e.target.value)}
          data-testid="user-search"
          autoComplete="off"
        />
      </div>

      <nav className="sidebar-list" aria-label="People">
        {loading ? (
          <SidebarSkeleton />
        ) : rows.length === 0 ? (
          <div className="sidebar-empty">
            <Users size={28} aria-hidden="true" />
            <p>{query ? 'Nobody matches that search.' : 'No conversations yet.'}</p>
            {!query && <p className="muted">People appear here when they come online.</p>}
          </div>
        ) : (
          <ul className="user-list" data-testid="user-list">
            {rows.map((row) => (
              <li key={row.id}>
                <button
                  type="button"
                  className={`user-row${row.id === activePeerId ? ' active' : ''}`}
                  onClick={() => onOpen(row.id)}
                  data-testid={`user-${row.username}`}
                  data-online={String(row.online)}
                  data-user-id={row.id}
                  aria-current={row.id === activePeerId ? 'true' : undefined}
                  aria-label={`${row.username}, ${row.online ? 'online' : 'offline'}${row.unread ? `, ${row.unread} unread` : ''}`}
                >
                  <Avatar name={row.username} id={row.id} size={42} online={row.online} />
                  <span className="user-row-body">
                    <span className="user-row-top">
                      <span className="user-name">{row.username}</span>
                      {row.lastMessage && <time className="user-time" dateTime={row.lastMessage.createdAt}>{formatShortDate(row.lastMessage.createdAt)}</time>}
                    </span>
                    <span className="user-row-bottom">
                      <span className="user-preview">
                        {row.lastMessage ? previewText(row.lastMessage, me.id) : row.online ? 'Online · say hello' : 'Offline'}
                      </span>
                      {row.unread > 0 && <span className="unread" aria-hidden="true">{row.unread > 99 ? '99+' : row.unread}</span>}
                    </span>
                  </span>
                </button>
              </li>
            ))}
          </ul>
        )}
      </nav>
    </aside>
  );
}
