import { useCallback, useEffect, useState } from 'react';
import { AuthScreen } from './components/AuthScreen.jsx';
import { ChatApp } from './components/ChatApp.jsx';
import { useTheme } from './hooks/useTheme.js';
import { clearSession, isSessionKey, loadSession, saveSession } from './session.js';

/** Signed out: the auth screen. Signed in: the chat, rebuilt from scratch for each token. */
export default function App() {
  const [session, setSession] = useState(loadSession);
  const [notice, setNotice] = useState(null);
  const [theme, toggleTheme] = useTheme();

  const signIn = useCallback((next) => {
    saveSession(next);
    setNotice(null);
    setSession(next);
  }, []);

  const signOut = useCallback((reason = null) => {
    clearSession();
    setNotice(reason);
    setSession(null);
  }, []);

  const expired = useCallback(() => signOut('Your session has expired. Please sign in again.'), [signOut]);

  useEffect(() => {
    // Signing in or out in another tab does the same here.
    function onStorage(event) {
      if (isSessionKey(event.key)) setSession(loadSession());
    }
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, []);

  if (!session) return <AuthScreen onSignedIn={signIn} notice={notice} />;
  return (
    <ChatApp
      key={session.token}
      session={session}
      theme={theme}
      onToggleTheme={toggleTheme}
      onSignOut={() => signOut()}
      onExpired={expired}
    />
  );
}
