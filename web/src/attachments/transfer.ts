// Moving blobs to and from the server (docs/protocol.md §11.4): a chunked, resumable
// upload and a download that resumes with Range, both with progress callbacks. Network
// failures and 502/503/504 answers are retried with back-off; an upload resumes from
// the parts the server already holds. Refusals arrive as AttachmentError with the
// server's stable code (§11.5) and its French and English messages. Only ciphertext
// passes here.
import { AttachmentError, refusal } from "./errors";

export type Progress = (done: number, total: number) => void;

export interface UploadState {
  attachment: string;
  size: number;
  part_size: number;
  parts: number;
  received: number[];
}

export interface TransferOptions {
  /** The server's origin; "" for the page's own. */
  baseUrl?: string;
  /** Pauses between attempts after a network failure; their count is the retries. */
  retryDelaysMs?: number[];
  /** The longest a request may take without progress. */
  timeoutMs?: number;
}

const DEFAULT_RETRY_DELAYS_MS = [200, 500, 1000, 2000, 4000, 8000];
const RETRYABLE_STATUS = new Set([502, 503, 504]);
const ATTACHMENT_ID = /^[0-9a-f]{32}$/;

/** A failure worth another attempt: the network, or a gateway answering for the server. */
class Retryable extends Error {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function checkId(attachment: string): string {
  if (!ATTACHMENT_ID.test(attachment)) throw refusal("bad_descriptor", "Not an attachment id.", "Identifiant de pièce jointe invalide.");
  return attachment;
}

// The server's codes (docs/protocol.md §11.5), for an answer without the error envelope
// (a proxy in front of the server, for instance): by HTTP status.
const BY_STATUS: Record<number, [code: string, english: string, french: string]> = {
  413: ["attachment_too_large", "The file is larger than the server accepts.", "Le fichier dépasse la taille acceptée par le serveur."],
  507: ["quota_exceeded", "Your storage quota is full.", "Votre quota de stockage est plein."],
  404: ["attachment_not_found", "This attachment is not available (deleted, or not shared with you).", "Cette pièce jointe n'est pas disponible (supprimée, ou non partagée avec vous)."],
  422: ["attachment_hash_mismatch", "The uploaded file was damaged on the way; send it again.", "Le fichier envoyé a été abîmé en route ; envoyez-le à nouveau."],
};

/** The server's error envelope as an AttachmentError. */
function serverError(status: number, body: string): AttachmentError {
  try {
    const error = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown; message_fr?: unknown } }).error;
    if (error && typeof error.code === "string" && typeof error.message === "string") {
      const french = typeof error.message_fr === "string" ? error.message_fr : error.message;
      return new AttachmentError(error.code, error.message, french, status);
    }
  } catch {
    // not JSON: below
  }
  const known = BY_STATUS[status];
  if (known) return new AttachmentError(known[0], known[1], known[2], status);
  return new AttachmentError("transfer_failed", `The server answered HTTP ${status}.`, `Le serveur a répondu HTTP ${status}.`, status);
}

export class AttachmentApi {
  private readonly base: string;
  private readonly delays: number[];
  private readonly timeoutMs: number;

  constructor(
    private readonly token: string,
    options: TransferOptions = {},
  ) {
    this.base = `${options.baseUrl ?? ""}/api/v1/attachments/`;
    this.delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  private async retrying<T>(attempt: () => Promise<T>): Promise<T> {
    const delays = [...this.delays];
    for (;;) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof Retryable)) throw error;
        const delay = delays.shift();
        if (delay === undefined) throw refusal("transfer_failed");
        await sleep(delay);
      }
    }
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.retrying(async () => {
      let response: Response;
      try {
        response = await fetch(this.base + path, {
          method,
          headers: {
            Authorization: `Bearer ${this.token}`,
            Accept: "application/json",
            ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          },
          body: body === undefined ? null : JSON.stringify(body),
          credentials: "omit",
          cache: "no-store",
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch {
        throw new Retryable();
      }
      if (RETRYABLE_STATUS.has(response.status)) throw new Retryable();
      const text = await response.text();
      if (!response.ok) throw serverError(response.status, text);
      return (text ? JSON.parse(text) : undefined) as T;
    });
  }

  startUpload(room: number, messageId: string, size: number): Promise<UploadState> {
    return this.json<UploadState>("POST", "uploads", { room, message_id: messageId, size });
  }

  uploadState(attachment: string): Promise<UploadState> {
    return this.json<UploadState>("GET", `uploads/${checkId(attachment)}`);
  }

  completeUpload(attachment: string, sha256: string): Promise<unknown> {
    return this.json("POST", `uploads/${checkId(attachment)}/complete`, { sha256 });
  }

  abortUpload(attachment: string): Promise<unknown> {
    return this.json("DELETE", `uploads/${checkId(attachment)}`);
  }

  /** Best effort: the server also deletes an upload idle for a day. */
  async abortQuietly(attachment: string): Promise<void> {
    try {
      await this.abortUpload(attachment);
    } catch {
      // already gone, or the network is down
    }
  }

  /** One part, through XMLHttpRequest: its upload events give the progress within a
   * part (fetch has none for request bodies). */
  putPart(attachment: string, index: number, data: Uint8Array, onProgress?: (sent: number) => void): Promise<void> {
    return this.retrying(
      () =>
        new Promise<void>((resolve, reject) => {
          const request = new XMLHttpRequest();
          request.open("PUT", `${this.base}uploads/${checkId(attachment)}/parts/${index}`);
          request.setRequestHeader("Authorization", `Bearer ${this.token}`);
          request.setRequestHeader("Content-Type", "application/octet-stream");
          request.timeout = this.timeoutMs;
          request.upload.onprogress = (event) => onProgress?.(event.loaded);
          request.onerror = request.ontimeout = request.onabort = () => reject(new Retryable());
          request.onload = () => {
            if (RETRYABLE_STATUS.has(request.status)) reject(new Retryable());
            else if (request.status >= 400) reject(serverError(request.status, request.responseText));
            else resolve();
          };
          request.send(new Blob([data as Uint8Array<ArrayBuffer>]));
        }),
    );
  }

  /** Upload a blob and return its attachment id. Either ``room`` and ``messageId``
   * start an upload, or ``resume`` names one this device began: only the parts the
   * server lacks are sent. Abandoned on the server if it fails, unless resuming (the
   * caller keeps the id to try again). */
  async uploadBlob(
    blob: Uint8Array,
    sha256: string,
    target: { room: number; messageId: string } | { resume: string },
    onProgress?: Progress,
  ): Promise<string> {
    const resuming = "resume" in target;
    const state = resuming ? await this.uploadState(target.resume) : await this.startUpload(target.room, target.messageId, blob.length);
    try {
      if (state.size !== blob.length) throw new RangeError("the upload was started for another size");
      const lengthOf = (index: number): number => (index < state.parts - 1 ? state.part_size : state.size - state.part_size * (state.parts - 1));
      const received = new Set(state.received);
      let done = [...received].reduce((sum, index) => sum + lengthOf(index), 0);
      onProgress?.(done, blob.length);
      for (let index = 0; index < state.parts; index++) {
        if (received.has(index)) continue;
        const start = index * state.part_size;
        const part = blob.subarray(start, start + lengthOf(index));
        await this.putPart(state.attachment, index, part, (sent) => onProgress?.(done + Math.min(sent, part.length), blob.length));
        done += part.length;
        onProgress?.(done, blob.length);
      }
      await this.completeUpload(state.attachment, sha256);
      return state.attachment;
    } catch (error) {
      if (!resuming) await this.abortQuietly(state.attachment);
      throw error;
    }
  }

  /** The blob ``attachment`` of exactly ``size`` bytes (size_mismatch otherwise),
   * resumed with Range after a network failure. The caller checks its hash. */
  async downloadBlob(attachment: string, size: number, onProgress?: Progress): Promise<Uint8Array> {
    const out = new Uint8Array(size);
    let received = 0;
    await this.retrying(async () => {
      const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
      if (received) headers.Range = `bytes=${received}-`;
      let response: Response;
      try {
        response = await fetch(this.base + checkId(attachment), { headers, credentials: "omit", cache: "no-store" });
      } catch {
        throw new Retryable();
      }
      if (RETRYABLE_STATUS.has(response.status)) throw new Retryable();
      if (!response.ok) throw serverError(response.status, await response.text());
      if (received && response.status !== 206) throw refusal("transfer_failed", "Resume was refused.", "La reprise a été refusée.");
      if (response.body === null) throw new Retryable();
      onProgress?.(received, size); // the answer has started: the bar shows where it starts
      const reader = response.body.getReader();
      for (;;) {
        let piece: ReadableStreamReadResult<Uint8Array>;
        try {
          piece = await reader.read();
        } catch {
          throw new Retryable();
        }
        if (piece.done) break;
        if (received + piece.value.length > size) {
          await reader.cancel();
          throw refusal("size_mismatch");
        }
        out.set(piece.value, received);
        received += piece.value.length;
        onProgress?.(received, size);
      }
    });
    if (received !== size) throw refusal("size_mismatch");
    return out;
  }
}
