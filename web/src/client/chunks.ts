// The decrypted history (the messages shown), kept apart from the vault's keys (docs/web.md, "Where keys
// live"): each room's messages in chunks of CHUNK_MESSAGES, each chunk its own
// IndexedDB record sealed with the vault's key (AES-256-GCM, the room and chunk number
// as associated data). A save writes only the chunks that changed, so a page of
// messages caught up costs that page, not the whole history again.
//
// A message's chunk is fixed by its position counted from the room's first message ever
// kept (``dropped`` counts those trimmed away), so trimming the oldest messages rewrites
// one chunk at most. The vault's record holds the index: for each chunk, the nonce of its
// current sealing; a chunk record that is not the one the index names (an older copy put
// back) is refused when the history is read.
import { b64u, randomBytes, utf8 } from "../e2ee/bytes";
import type { ChatMessage } from "./model";

export const CHUNK_MESSAGES = 200;

export interface HistoryIndex {
  dropped: number;
  chunks: Record<string, string>; // chunk number → base64url nonce of its sealed record
}

export interface ChunkWrite {
  key: string;
  nonce: Uint8Array;
  aad: Uint8Array;
  plaintext: Uint8Array;
}

export const chunkRecord = (room: string, chunk: number): string => `history/${room}/${chunk}`;
export const chunkAad = (room: string, chunk: number): Uint8Array => utf8(`relais/web/history/${room}/${chunk}`);

/** What a message shows that can change once it is in the list: after that, only its
 * number, state and flags change (client/model.ts); text and content never do. */
const fingerprint = (m: ChatMessage): string => `${m.id}\u0001${m.seq ?? ""}\u0001${m.state}\u0001${m.flags.length}`;

/** Drop a room's oldest messages beyond ``max``, counting them so later chunks keep
 * their numbers. */
export function trimHistory(index: Record<string, HistoryIndex>, room: string, list: ChatMessage[], max: number): void {
  if (list.length <= max) return;
  const excess = list.length - max;
  list.splice(0, excess);
  const entry = (index[room] ??= { dropped: 0, chunks: {} });
  entry.dropped += excess;
}

export class HistoryChunks {
  /** Record key → the fingerprint of what that record holds now. */
  private stored = new Map<string, string>();

  /** The chunks of ``messages`` that differ from what is stored, sealed afresh (new
   * nonces in ``index``), and the records no message needs any more. */
  changes(messages: Record<string, ChatMessage[]>, index: Record<string, HistoryIndex>): { writes: ChunkWrite[]; deletes: string[] } {
    const writes: ChunkWrite[] = [];
    const deletes: string[] = [];
    for (const room of new Set([...Object.keys(messages), ...Object.keys(index)])) {
      const list = messages[room] ?? [];
      const entry = (index[room] ??= { dropped: 0, chunks: {} });
      const wanted = new Set<number>();
      const first = entry.dropped;
      for (let start = 0; start < list.length; ) {
        const chunk = Math.floor((first + start) / CHUNK_MESSAGES);
        const end = Math.min(list.length, (chunk + 1) * CHUNK_MESSAGES - first);
        const slice = list.slice(start, end);
        start = end;
        wanted.add(chunk);
        const key = chunkRecord(room, chunk);
        const print = slice.map(fingerprint).join("\u0000");
        if (this.stored.get(key) === print && entry.chunks[chunk]) continue;
        const nonce = randomBytes(12);
        entry.chunks[chunk] = b64u(nonce);
        this.stored.set(key, print);
        writes.push({ key, nonce, aad: chunkAad(room, chunk), plaintext: utf8(JSON.stringify(slice)) });
      }
      for (const chunk of Object.keys(entry.chunks).map(Number)) {
        if (wanted.has(chunk)) continue;
        delete entry.chunks[chunk];
        this.stored.delete(chunkRecord(room, chunk));
        deletes.push(chunkRecord(room, chunk));
      }
      if (!list.length && !Object.keys(entry.chunks).length && !entry.dropped) delete index[room];
    }
    return { writes, deletes };
  }

  /** A chunk read from storage: what it holds is the stored state. */
  loaded(room: string, chunk: number, messages: ChatMessage[]): void {
    this.stored.set(chunkRecord(room, chunk), messages.map(fingerprint).join("\u0000"));
  }

  /** A save that failed: the next one writes every chunk again. */
  forget(): void {
    this.stored.clear();
  }
}
