import { useId, useState } from 'react';
import { X } from 'lucide-react';
import { Dialog } from './Dialog.jsx';
import { PeoplePicker } from './PeoplePicker.jsx';
import { Spinner } from './Spinner.jsx';
import { useSelection } from '../hooks/useSelection.js';

/** The server's limit on a room name, after trimming. */
export const MAX_ROOM_NAME = 100;

/** Chips for the people picked so far; each one's button takes it out again. */
export function SelectedPeople({ selected, onRemove }) {
  if (!selected.size) return null;
  return (
    <ul className="chips" aria-label="Selected people">
      {[...selected.values()].map((user) => (
        <li key={user.id} className="chip">
          <span>{user.username}</span>
          <button type="button" onClick={() => onRemove(user)} aria-label={`Remove ${user.username}`}>
            <X size={12} aria-hidden="true" />
          </button>
        </li>
      ))}
    </ul>
  );
}

/** "New group": a name and the people to put in it; the caller becomes its owner. */
export function NewGroupDialog({ token, myId, known, onCreate, onClose }) {
  const nameId = useId();
  const [name, setName] = useState('');
  const [query, setQuery] = useState('');
  const [selected, toggle] = useSelection();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const trimmed = name.trim();
  const valid = trimmed.length > 0 && trimmed.length <= MAX_ROOM_NAME;

  async function submit(event) {
    event.preventDefault();
    if (!valid || busy) return;
    setBusy(true);
    setError(null);
    try {
      await onCreate(trimmed, [...selected.keys()]);
    } catch (err) {
      setError(err.message || 'Could not create the group.');
      setBusy(false);
    }
  }

  return (
    <Dialog
      title="New group"
      onClose={onClose}
      testId="new-group-dialog"
      footer={
        <>
          <button type="button" className="secondary-button" onClick={onClose}>Cancel</button>
          <button type="submit" form={`${nameId}-form`} className="primary-button" disabled={!valid || busy} data-testid="create-group">
            {busy && <Spinner label="Creating group" size={16} />}
            <span>Create group{selected.size ? ` (${selected.size + 1})` : ''}</span>
          </button>
        </>
      }
    >
      <form id={`${nameId}-form`} onSubmit={submit} className="dialog-form">
        <label className="field" htmlFor={nameId}>
          <span className="field-label">Group name</span>
          <input
            id={nameId}
            value={name}
            onChange={(e) => setName(e.target.value)}
            maxLength={MAX_ROOM_NAME + 20}
            autoComplete="off"
            autoFocus
            required
            aria-invalid={trimmed.length > MAX_ROOM_NAME}
            data-testid="group-name"
          />
          {trimmed.length > MAX_ROOM_NAME && <span className="field-hint error">At most {MAX_ROOM_NAME} characters.</span>}
        </label>
      </form>
      <p className="field-label picker-label">Members</p>
      <SelectedPeople selected={selected} onRemove={toggle} />
      <PeoplePicker token={token} myId={myId} known={known} query={query} onQuery={setQuery} onPick={toggle} selected={selected} label="Add people" />
      {error && <p className="form-error" role="alert" data-testid="dialog-error">{error}</p>}
    </Dialog>
  );
}
