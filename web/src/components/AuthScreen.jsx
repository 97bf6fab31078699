import { useId, useState } from 'react';
import { AnimatePresence, motion } from 'framer-motion';
import { AlertCircle, ArrowRight, Eye, EyeOff, MessagesSquare } from 'lucide-react';
import { login, register } from '../api.js';
import { Spinner } from './Spinner.jsx';

/** Sign in, or create an account and sign straight in. Server errors show inline under the form. */
export function AuthScreen({ onSignedIn, notice }) {
  const [mode, setMode] = useState('login');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [showPassword, setShowPassword] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const ids = useId();
  const registering = mode === 'register';

  async function submit(event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      if (registering) await register(username.trim(), password);
      const session = await login(username.trim(), password);
      onSignedIn({ token: session.access_token, user: session.user });
    } catch (err) {
      setError(err.message || 'Something went wrong.');
      setBusy(false);
    }
  }

  function toggleMode() {
    setMode(registering ? 'login' : 'register');
    setError(null);
  }

  return (
    <main className="auth">
      <motion.section
        className="auth-card"
        initial={{ opacity: 0, y: 12 }}
        animate={{ opacity: 1, y: 0 }}
        transition={{ duration: 0.25, ease: 'easeOut' }}
        aria-labelledby={`${ids}-title`}
      >
        <div className="brand">
          <span className="brand-mark">
            <MessagesSquare size={22} aria-hidden="true" />
          </span>
          <span className="brand-name">Nexus Chat</span>
        </div>
        <h1 id={`${ids}-title`} className="auth-title">
          {registering ? 'Create your account' : 'Welcome back'}
        </h1>
        <p className="auth-subtitle">
          {registering ? 'Pick a username and a password to get started.' : 'Sign in to pick up where you left off.'}
        </p>
        {notice && !error && <p className="auth-notice" role="status">{notice}</p>}

        <form className="auth-form" onSubmit={submit} noValidate data-testid="login-form">
          <label className="field" htmlFor={`${ids}-username`}>
            <span className="field-label">Username</span>
            <input
              id={`${ids}-username`}
              data-testid="login-username"
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellCheck="false"
              required
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              aria-invalid={Boolean(error)}
              aria-describedby={error ? `${ids}-error` : undefined}
              autoFocus
            />
          </label>
          <label className="field" htmlFor={`${ids}-password`}>
            <span className="field-label">Password</span>
            <span className="field-with-action">
              <input
                id={`${ids}-password`}
                data-testid="login-password"
                name="password"
                type={showPassword ? 'text' : 'password'}
                autoComplete={registering ? 'new-password' : 'current-password'}
                required
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                aria-invalid={Boolean(error)}
                aria-describedby={error ? `${ids}-error` : undefined}
              />
              <button
                type="button"
                className="icon-button field-action"
                onClick={() => setShowPassword((v) => !v)}
                aria-label={showPassword ? 'Hide password' : 'Show password'}
                aria-pressed={showPassword}
              >
                {showPassword ? <EyeOff size={18} aria-hidden="true" /> : <Eye size={18} aria-hidden="true" />}
              </button>
            </span>
          </label>

          <AnimatePresence initial={false}>
            {error && (
              <motion.p
                id={`${ids}-error`}
                className="form-error"
                role="alert"
                data-testid="auth-error"
                initial={{ opacity: 0, height: 0 }}
                animate={{ opacity: 1, height: 'auto' }}
                exit={{ opacity: 0, height: 0 }}
              >
                <AlertCircle size={16} aria-hidden="true" />
                <span>{error}</span>
              </motion.p>
            )}
          </AnimatePresence>

          <button
            type="submit"
            className="primary-button"
            data-testid="login-submit"
            disabled={busy || !username.trim() || !password}
          >
            {busy ? <Spinner label={registering ? 'Creating account' : 'Signing in'} size={16} /> : null}
            <span>{registering ? 'Create account' : 'Sign in'}</span>
            {!busy && <ArrowRight size={16} aria-hidden="true" />}
          </button>
        </form>

        <p className="auth-switch">
          {registering ? 'Already have an account?' : 'New to Nexus?'}{' '}
          <button type="button" className="link-button" onClick={toggleMode} data-testid="register-toggle">
            {registering ? 'Sign in' : 'Create an account'}
          </button>
        </p>
      </motion.section>
    </main>
  );
}
