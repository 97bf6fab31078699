import { useState } from 'react';
import { Dialog } from './Dialog.jsx';
import { PeoplePicker } from './PeoplePicker.jsx';

/** "New chat": find anyone in the directory, online or not, and open a conversation with them. */
export function NewChatDialog({ token, myId, known, onPick, onClose }) {
  const [query, setQuery] = useState('');
  return (
    <Dialog title="New chat" onClose={onClose} testId="new-chat-dialog">
      <PeoplePicker token={token} myId={myId} known={known} query={query} onQuery={setQuery} onPick={onPick} autoFocus />
    </Dialog>
  );
}
