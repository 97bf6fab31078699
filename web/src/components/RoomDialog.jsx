import { useId, useState } from 'react';
import { Crown, LogOut, Pencil, UserMinus, UserPlus } from 'lucide-react';
import { Avatar } from './Avatar.jsx';
import { Dialog } from './Dialog.jsx';
import { MAX_ROOM_NAME, SelectedPeople } from './NewGroupDialog.jsx';
import { useSelection } from '../hooks/useSelection.js';
import { PeoplePicker } from './PeoplePicker.jsx';

function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  async function run(action) {
    setBusy(true);
    setError(null);
    try {
      await action();
      return true;
    } catch (err) {
      setError(err.message || 'That did not work.');
      return false;
    } finally {
      setBusy(false);
    }
  }
  return { busy, error, run };
}

/**
 * A room's details: its members (with who owns it and who is online), and for the owner the
 * controls to rename it, add people and remove members. Everyone can leave.
 */
export function RoomDialog({ token, me, room, online, known, onRename, onAdd, onRemove, onLeave, onClose }) {
  const ids = useId();
  const isOwner = room.ownerId === me.id;
  const [name, setName] = useState(room.name);
  const [renaming, setRenaming] = useState(false);
  const [adding, setAdding] = useState(false);
  const [confirmLeave, setConfirmLeave] = useState(false);
  const [query, setQuery] = useState('');
  const [selected, toggle] = useSelection();
  const { busy, error, run } = useAction();
  const members = [...(room.members ?? [])].sort(
    (a, b) => Number(b.id === room.ownerId) - Number(a.id === room.ownerId) || a.username.localeCompare(b.username),
  );
  const trimmed = name.trim();

  async function rename(event) {
    event.preventDefault();
    if (!trimmed || trimmed.length > MAX_ROOM_NAME) return;
    if (await run(() => onRename(trimmed))) setRenaming(false);
  }

  async function add() {
    if (!selected.size) return;
    if (await run(() => onAdd([...selected.keys()]))) {
      setAdding(false);
      for (const user of selected.values()) toggle(user);
    }
  }

  return (
    <Dialog title={room.name} onClose={onClose} testId="room-dialog" className="room-dialog">
      {isOwner && (
        renaming ? (
          <form className="rename-form" onSubmit={rename}>
            <label className="visually-hidden" htmlFor={`${ids}-name`}>Group name</label>
            <input id={`${ids}-name`} value={name} onChange={(e) => setName(e.target.value)} autoFocus data-testid="rename-input" />
            <button type="submit" className="primary-button small" disabled={busy || !trimmed || trimmed.length > MAX_ROOM_NAME} data-testid="rename-save">Save</button>
            <button type="button" className="secondary-button small" onClick={() => setRenaming(false)}>Cancel</button>
          </form>
        ) : (
          <button type="button" className="secondary-button small" onClick={() => setRenaming(true)} data-testid="rename-group">
            <Pencil size={14} aria-hidden="true" /> Rename
          </button>
        )
      )}

      <h3 className="section-title" id={`${ids}-members`}>{members.length} {members.length === 1 ? 'member' : 'members'}</h3>
      <ul className="member-list" aria-labelledby={`${ids}-members`} data-testid="member-list">
        {members.map((member) => {
          const isOnline = member.id === me.id || online.has(member.id);
          return (
            <li key={member.id} className="member-row" data-testid={`member-${member.username}`}>
              <Avatar name={member.username} id={member.id} size={32} online={isOnline} />
              <span className="member-name">
                {member.username}
                {member.id === me.id && <span className="muted"> (you)</span>}
              </span>
              {member.id === room.ownerId && (
                <span className="role-badge" title="Owner"><Crown size={12} aria-hidden="true" /> Owner</span>
              )}
              {isOwner && member.id !== me.id && (
                <button
                  type="button"
                  className="icon-button danger"
                  onClick={() => run(() => onRemove(member.id))}
                  disabled={busy}
                  aria-label={`Remove ${member.username} from the group`}
                  title="Remove from group"
                  data-testid={`remove-${member.username}`}
                >
                  <UserMinus size={16} aria-hidden="true" />
                </button>
              )}
            </li>
          );
        })}
      </ul>

      {isOwner && (
        adding ? (
          <div className="add-members">
            <SelectedPeople selected={selected} onRemove={toggle} />
            <PeoplePicker
              token={token}
              myId={me.id}
              known={known}
              query={query}
              onQuery={setQuery}
              onPick={toggle}
              selected={selected}
              exclude={members.map((member) => member.id)}
              label="Find people to add"
              autoFocus
            />
            <div className="row-actions">
              <button type="button" className="secondary-button small" onClick={() => setAdding(false)}>Cancel</button>
              <button type="button" className="primary-button small" onClick={add} disabled={busy || !selected.size} data-testid="add-selected">
                Add {selected.size || ''}
              </button>
            </div>
          </div>
        ) : (
          <button type="button" className="secondary-button" onClick={() => setAdding(true)} data-testid="add-people">
            <UserPlus size={16} aria-hidden="true" /> Add people
          </button>
        )
      )}

      {error && <p className="form-error" role="alert" data-testid="dialog-error">{error}</p>}

      <div className="leave-zone">
        {confirmLeave ? (
          <div className="confirm" role="group" aria-label="Leave the group?">
            <span>{isOwner && members.length > 1 ? 'Leave? The longest-standing member becomes the owner.' : 'Leave this group?'}</span>
            <button type="button" className="secondary-button small" onClick={() => setConfirmLeave(false)}>Stay</button>
            <button type="button" className="danger-button small" onClick={() => run(onLeave)} disabled={busy} data-testid="leave-confirm">Leave</button>
          </div>
        ) : (
          <button type="button" className="danger-button" onClick={() => setConfirmLeave(true)} data-testid="leave-group">
            <LogOut size={16} aria-hidden="true" /> Leave group
          </button>
        )}
      </div>
    </Dialog>
  );
}
