// The server's live frame of a téléexpertise step (docs/protocol.md §12.4):
// {"type": "teleexpertise", "room", "action", "state", "deadline": ms, "seq", "at": ms}.
// It says only what the server knows, so it is a hint: what a case shows of its
// content still comes from the verified events (teleexpertise/verify.ts).

export interface TeleexpertiseFrame {
  room: number;
  action: string;
  state: string;
  deadline: number; // ms since the epoch
  seq: number | null;
  at: number; // ms since the epoch
}

/** The frame's fields, or null when one is missing or of the wrong type. */
export function teleexpertiseFrame(frame: Record<string, unknown>): TeleexpertiseFrame | null {
  const { room, action, state, deadline, seq, at } = frame;
  if (typeof room !== "number" || typeof action !== "string" || typeof state !== "string" || typeof deadline !== "number" || typeof at !== "number") return null;
  if (seq !== null && seq !== undefined && typeof seq !== "number") return null;
  return { room, action, state, deadline, seq: seq ?? null, at };
}
