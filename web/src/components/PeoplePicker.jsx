import { useId } from 'react';
import { Check, Search } from 'lucide-react';
import { usePeopleSearch } from '../hooks/usePeopleSearch.js';
import { Avatar } from './Avatar.jsx';
import { Spinner } from './Spinner.jsx';

/**
 * A searchable list of people from the user directory. With `selected` (a Map id → user) it picks
 * several (checkboxes); without, a click or Enter picks one.
 */
export function PeoplePicker({ token, myId, known, query, onQuery, onPick, selected, exclude = [], autoFocus, label = 'Search people' }) {
  const inputId = useId();
  const listId = useId();
  const { results, loading } = usePeopleSearch(token, query, { known, myId });
  const hidden = new Set(exclude);
  const people = results.filter((user) => !hidden.has(user.id));
  const multi = Boolean(selected);

  function onKeyDown(event) {
    if (event.key === 'Enter') {
      event.preventDefault();
      if (people[0] && !multi) onPick(people[0]);
    }
  }

  return (
    <div className="picker">
      <div className="search picker-search">
        <label htmlFor={inputId} className="visually-hidden">{label}</label>
        <Search size={16} aria-hidden="true" className="search-icon" />
        <input
          id={inputId}
          type="search"
          placeholder={label}
          value={query}
          onChange={(e) => onQuery(e.target.value)}
          onKeyDown={onKeyDown}
          autoComplete="off"
          autoFocus={autoFocus}
          aria-controls={listId}
          data-testid="people-search"
        />
      </div>
      <ul className="picker-list" id={listId} aria-label="People" aria-busy={loading} data-testid="people-results">
        {people.map((user) => {
          const checked = multi && selected.has(user.id);
          return (
            <li key={user.id}>
              {multi ? (
                <label className={`picker-row${checked ? ' checked' : ''}`} data-testid={`pick-${user.username}`}>
                  <input type="checkbox" className="visually-hidden" checked={checked} onChange={() => onPick(user)} />
                  <Avatar name={user.username} id={user.id} size={32} online={Boolean(user.online)} />
                  <span className="picker-name">{user.username}</span>
                  <span className="picker-state">{user.online ? 'Online' : 'Offline'}</span>
                  <span className="picker-check" aria-hidden="true">{checked && <Check size={14} />}</span>
                </label>
              ) : (
                <button type="button" className="picker-row" onClick={() => onPick(user)} data-testid={`pick-${user.username}`}>
                  <Avatar name={user.username} id={user.id} size={32} online={Boolean(user.online)} />
                  <span className="picker-name">{user.username}</span>
                  <span className="picker-state">{user.online ? 'Online' : 'Offline'}</span>
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {loading && !people.length && <div className="picker-empty"><Spinner label="Searching" size={16} /></div>}
      {!loading && !people.length && <p className="picker-empty muted">{query.trim() ? 'Nobody by that name.' : 'Type a name to find people.'}</p>}
    </div>
  );
}
