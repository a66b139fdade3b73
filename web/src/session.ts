// The logged-in device as this browser remembers it (IndexedDB).
import * as db from "./store/db";

export interface Session {
  token: string;
  device: number;
  nationalId: string;
  displayName: string;
}

const KEY = "session";

export function loadSession(): Promise<Session | undefined> {
  return db.get<Session>(KEY);
}

export function saveSession(session: Session): Promise<void> {
  return db.put(KEY, session);
}
