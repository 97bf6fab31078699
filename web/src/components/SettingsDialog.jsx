import { useId, useState } from 'react';
import { Bell, Server, Volume2 } from 'lucide-react';
import { Dialog } from './Dialog.jsx';

const PERMISSION_TEXT = {
  granted: 'Allowed by the browser.',
  denied: 'Blocked by the browser: allow notifications for this site in its settings.',
  default: 'The browser will ask when you switch them on.',
  unsupported: 'This browser cannot show notifications.',
};

/** The instance that answered this tab (a developer detail: here, or in the sidebar with `?debug`). */
export function InstanceIndicator({ instance, connection }) {
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

/** Settings: desktop notifications (asked for only from here), the sound, and what this tab is connected to. */
export function SettingsDialog({ prefs, permission, onNotifications, onSound, instance, connection, onClose }) {
  const ids = useId();
  const [asking, setAsking] = useState(false);
  const on = prefs.notifications && permission === 'granted';

  async function toggleNotifications(event) {
    const want = event.target.checked;
    setAsking(true);
    try {
      await onNotifications(want);
    } finally {
      setAsking(false);
    }
  }

  return (
    <Dialog title="Settings" onClose={onClose} testId="settings-dialog">
      <section className="settings-section" aria-labelledby={`${ids}-alerts`}>
        <h3 className="section-title" id={`${ids}-alerts`}>Notifications</h3>
        <label className="toggle-row">
          <Bell size={18} aria-hidden="true" />
          <span className="toggle-text">
            <span>Desktop notifications</span>
            <span className="muted small">While this tab is in the background. {PERMISSION_TEXT[permission] ?? ''}</span>
          </span>
          <input
            type="checkbox"
            role="switch"
            checked={on}
            disabled={asking || permission === 'denied' || permission === 'unsupported'}
            onChange={toggleNotifications}
            data-testid="notifications-toggle"
          />
        </label>
        <label className="toggle-row">
          <Volume2 size={18} aria-hidden="true" />
          <span className="toggle-text">
            <span>Sound</span>
            <span className="muted small">A short tone for a new message while this tab is in the background.</span>
          </span>
          <input type="checkbox" role="switch" checked={prefs.sound} onChange={(e) => onSound(e.target.checked)} data-testid="sound-toggle" />
        </label>
        <p className="muted small">Mute a conversation from the bell in its header.</p>
      </section>
      <section className="settings-section" aria-labelledby={`${ids}-about`}>
        <h3 className="section-title" id={`${ids}-about`}>About</h3>
        <p className="about-row">
          <span className="muted">Server instance</span>
          <InstanceIndicator instance={instance} connection={connection} />
        </p>
      </section>
    </Dialog>
  );
}
