// Envelopes that came before the key to open them (a sender key share or a history-key
// transfer still on its way), kept in the room's record of the vault so that a reload
// loses none of them: the catch-up asks only for what came after the room's last
// number, and that number moved past them when they arrived (docs/web.md, "Messages
// whose key is late").
//
// Kept: the newest PENDING_PER_ROOM of a room, PENDING_BYTES_PER_ROOM of their bodies at
// most, each for PENDING_MAX_AGE_MS after it first came; beyond that an envelope is
// given up, as a message that does not open is (an alert, nothing shown).
import type { Frame } from "../api/socket";

// As many as a room's history keeps (client.ts, MAX_MESSAGES_PER_ROOM): a device just
// linked whose catch-up of a long room comes before the history keys loses none of it.
export const PENDING_PER_ROOM = 5000;
export const PENDING_BYTES_PER_ROOM = 4 * 1024 * 1024;
export const PENDING_MAX_AGE_MS = 30 * 24 * 3600 * 1000;

/** An envelope as the server delivered it (live or in a catch-up page), and when this
 * device first held it. */
export interface PendingEnvelope {
  room: number;
  seq: number;
  id: string;
  sender: { practitioner: string; device: number };
  body: string;
  ts: number;
  heldSince: number;
}

/** What a frame or a catch-up item names, and nothing else. */
export function pendingFrom(item: Frame | PendingEnvelope, now: number): PendingEnvelope {
  const sender = item.sender as { practitioner: string; device: number };
  return {
    room: item.room as number,
    seq: item.seq as number,
    id: typeof item.id === "string" ? item.id : "",
    sender: { practitioner: String(sender.practitioner), device: Number(sender.device) },
    body: item.body as string,
    ts: typeof item.ts === "number" ? item.ts : 0,
    heldSince: typeof item.heldSince === "number" ? item.heldSince : now,
  };
}

/** ``list`` and ``added`` in order of number, one per number, within the bounds: the
 * newest that fit are kept, the older ones and those held too long are given up. */
export function boundPending(list: PendingEnvelope[], added: PendingEnvelope[], now: number): { kept: PendingEnvelope[]; dropped: PendingEnvelope[] } {
  const bySeq = new Map<number, PendingEnvelope>();
  for (const item of [...list, ...added]) if (!bySeq.has(item.seq)) bySeq.set(item.seq, item);
  const sorted = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  const kept: PendingEnvelope[] = [];
  const dropped: PendingEnvelope[] = [];
  let bytes = 0;
  let full = false;
  for (let i = sorted.length - 1; i >= 0; i--) {
    const item = sorted[i]!;
    full ||= kept.length >= PENDING_PER_ROOM || bytes + item.body.length > PENDING_BYTES_PER_ROOM;
    if (!full && now - item.heldSince <= PENDING_MAX_AGE_MS) {
      kept.unshift(item);
      bytes += item.body.length;
    } else {
      dropped.unshift(item);
    }
  }
  return { kept, dropped };
}
