// Photos and files in a conversation: the photo and file buttons, the preview before
// sending (the photo as it will leave the device: upright, resized, without metadata),
// the progress bar, and received attachments — a photo's thumbnail (carried in the
// message) that opens full screen, a file to download. The conversation view supplies
// how a message is sent (`sendContent`): the descriptor travels only inside the
// end-to-end encrypted message, sent with the upload's message id into its room.
import "./attachments.css";
import { h, replace } from "./dom";
import { errorText, t } from "../i18n";
import type { JsonObject } from "../e2ee/canonical";
import {
  AttachmentApi,
  AttachmentError,
  checkDescriptor,
  fetchAttachment,
  isPhoto,
  processPhoto,
  sendDocument,
  sendPhoto,
  thumbnailBlob,
  type Descriptor,
  type ProcessedPhoto,
} from "../attachments";

export const ATTACHMENT_TYPE = "attachment";
export const MAX_CAPTION_BYTES = 4096;

export interface AttachmentContent {
  type: typeof ATTACHMENT_TYPE;
  attachment: Descriptor;
  text?: string;
}

/** The message content carrying a descriptor (docs/protocol.md §11.2). */
export function attachmentContent(descriptor: Descriptor, caption?: string): AttachmentContent {
  return caption ? { type: ATTACHMENT_TYPE, attachment: descriptor, text: caption } : { type: ATTACHMENT_TYPE, attachment: descriptor };
}

/** The descriptor a decrypted message carries, or null for other messages; throws
 * AttachmentError(bad_descriptor) for a malformed attachment message. */
export function attachmentOf(content: { type?: unknown; attachment?: unknown }): Descriptor | null {
  if (content.type !== ATTACHMENT_TYPE) return null;
  return checkDescriptor(content.attachment);
}

export interface ConversationLink {
  api: AttachmentApi;
  room: number;
  /** Sends the end-to-end encrypted message with this content and client message id. */
  sendContent(content: AttachmentContent, messageId: string): Promise<void>;
}

function errorMessage(error: unknown): string {
  if (error instanceof AttachmentError) return errorText(error);
  return errorText({ code: "internal", message: String(error), messageFr: String(error) });
}

function humanSize(bytes: number): string {
  const units = ["o", "Ko", "Mo", "Go"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

function progressBar(label: string): { element: HTMLElement; update(done: number, total: number): void } {
  const bar = h("progress", { max: 100, value: 0, "aria-label": label });
  const text = h("span", { class: "status", "aria-live": "polite" });
  return {
    element: h("div", { class: "attach-progress" }, bar, text),
    update(done: number, total: number) {
      const percent = total ? Math.floor((100 * done) / total) : 100;
      bar.value = percent;
      text.textContent = t("attachUploading", { percent });
    },
  };
}

function captionBytes(text: string): number {
  return new TextEncoder().encode(JSON.stringify(text)).length - 2;
}

/** The photo and file buttons, and the preview area where a picked file waits to be sent. */
export function attachmentComposer(link: ConversationLink): HTMLElement {
  const area = h("section", { class: "attach-area", "aria-label": t("attachPreviewTitle") });
  const photoInput = h("input", { type: "file", accept: "image/*", capture: "environment", "data-attach": "photo" });
  const fileInput = h("input", { type: "file", "data-attach": "file" });
  const buttons = h(
    "div",
    { class: "attach-buttons" },
    h("label", { class: "attach-button", title: t("attachPhotoLabel") }, photoInput, t("attachPhoto")),
    h("label", { class: "attach-button", title: t("attachFileLabel") }, fileInput, t("attachFile")),
  );
  photoInput.setAttribute("aria-label", t("attachPhotoLabel"));
  fileInput.setAttribute("aria-label", t("attachFileLabel"));
  const picked = (input: HTMLInputElement) => () => {
    const file = input.files?.[0];
    input.value = "";
    if (file) void preview(link, area, file);
  };
  photoInput.addEventListener("change", picked(photoInput));
  fileInput.addEventListener("change", picked(fileInput));
  return h("div", { class: "attachments-composer" }, buttons, area);
}

async function preview(link: ConversationLink, area: HTMLElement, file: File): Promise<void> {
  const status = h("p", { class: "status", role: "status" }, t("attachPreparing"));
  replace(area, h("div", { class: "attach-preview" }, status));
  let photo: ProcessedPhoto | null = null;
  let shown: Node;
  let url: string | null = null;
  try {
    if (await isPhoto(file)) {
      photo = await processPhoto(file);
      url = URL.createObjectURL(new Blob([photo.data as Uint8Array<ArrayBuffer>], { type: photo.mime }));
      shown = h(
        "figure",
        {},
        h("img", { src: url, alt: t("attachPhotoAlt", { name: file.name }), width: photo.width, height: photo.height, "data-preview": "photo" }),
        h("figcaption", { class: "status" }, t("attachCleaned", { width: photo.width, height: photo.height })),
      );
    } else {
      shown = h("p", { "data-preview": "file" }, t("attachFileSummary", { name: file.name, size: humanSize(file.size) }));
    }
  } catch (error) {
    replace(area, h("p", { role: "alert" }, errorMessage(error)));
    return;
  }
  const caption = h("input", { type: "text", "aria-label": t("attachCaption"), placeholder: t("attachCaption"), maxlength: 4096 });
  const progress = progressBar(t("attachPreviewTitle"));
  const message = h("p", { role: "alert" });
  const close = (): void => {
    if (url) URL.revokeObjectURL(url);
    replace(area);
  };
  const sendButton = h("button", { type: "button", "data-attach": "send" }, t("attachSend"));
  const cancelButton = h("button", { type: "button", class: "secondary", onclick: close }, t("attachCancel"));
  sendButton.addEventListener("click", async () => {
    const text = caption.value.trim();
    if (captionBytes(text) > MAX_CAPTION_BYTES) {
      message.textContent = errorMessage(new AttachmentError("caption_too_long", "The caption is too long.", "La légende est trop longue."));
      return;
    }
    sendButton.disabled = cancelButton.disabled = true;
    const messageId = crypto.randomUUID();
    const target = { room: link.room, messageId };
    try {
      const descriptor = photo
        ? await sendPhoto(link.api, photo, target, file.name, progress.update)
        : await sendDocument(link.api, file, target, { name: file.name, onProgress: progress.update });
      try {
        await link.sendContent(attachmentContent(descriptor, text || undefined), messageId);
      } catch (error) {
        await link.api.abortQuietly(descriptor.blob); // the message did not go: withdraw its file
        throw error;
      }
      close();
    } catch (error) {
      message.textContent = errorMessage(error);
      sendButton.disabled = cancelButton.disabled = false;
    }
  });
  replace(
    area,
    h("div", { class: "attach-preview" }, h("h2", {}, t("attachPreviewTitle")), shown, caption, progress.element, message, h("div", { class: "actions" }, sendButton, cancelButton)),
  );
}

function download(name: string, data: Uint8Array, mime: string): void {
  const url = URL.createObjectURL(new Blob([data as Uint8Array<ArrayBuffer>], { type: mime }));
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The file name to offer when saving: the sender's name without any path or control
 * character (never used as a path as it is). */
export function shownName(descriptor: Descriptor): string {
  const base = (descriptor.name ?? "").split(/[\\/]/).pop() ?? "";
  const clean = base.replace(/[\u0000-\u001f\u007f<>:"|?*]/g, "").trim();
  return clean || t("attachUnnamed");
}

function openFullScreen(photo: Uint8Array, descriptor: Descriptor, opener: HTMLElement): void {
  const url = URL.createObjectURL(new Blob([photo as Uint8Array<ArrayBuffer>], { type: descriptor.mime }));
  const viewer = h("dialog", { class: "attachment-viewer", "aria-label": shownName(descriptor) });
  const close = (): void => {
    viewer.close();
    viewer.remove();
    URL.revokeObjectURL(url);
    opener.focus();
  };
  viewer.append(
    h("img", { src: url, alt: t("attachPhotoAlt", { name: shownName(descriptor) }), "data-full": "photo" }),
    h("button", { type: "button", class: "close", onclick: close }, t("attachClose")),
  );
  viewer.addEventListener("cancel", (event) => {
    event.preventDefault();
    close();
  });
  document.body.append(viewer);
  viewer.showModal();
}

/** A received attachment: a photo's thumbnail opening full screen, or a file to save. */
export function attachmentView(descriptor: Descriptor, api: AttachmentApi): HTMLElement {
  const name = shownName(descriptor);
  const status = h("p", { class: "status", "aria-live": "polite" });
  const bar = h("progress", { max: 100, value: 0, hidden: true, "aria-label": name });
  const onProgress = (done: number, total: number): void => {
    bar.hidden = false;
    bar.value = total ? Math.floor((100 * done) / total) : 100;
    status.textContent = t("attachDownloading", { percent: bar.value });
  };
  const fetchFile = async (): Promise<Uint8Array | null> => {
    try {
      const data = await fetchAttachment(api, descriptor, onProgress);
      bar.hidden = true;
      status.textContent = "";
      return data;
    } catch (error) {
      bar.hidden = true;
      status.setAttribute("role", "alert");
      status.textContent = errorMessage(error);
      return null;
    }
  };
  let cached: Uint8Array | null = null;
  if (descriptor.mime.startsWith("image/")) {
    const thumbnail = thumbnailBlob(descriptor);
    const opener = h(
      "button",
      { type: "button", class: "thumb", "aria-label": t("attachOpenPhoto", { name }), "data-attachment": descriptor.blob },
      thumbnail
        ? h("img", { src: URL.createObjectURL(thumbnail), alt: t("attachPhotoAlt", { name }), width: descriptor.thumbnail!.width, height: descriptor.thumbnail!.height })
        : t("attachNoPreview"),
    );
    opener.addEventListener("click", async () => {
      cached ??= await fetchFile();
      if (cached) openFullScreen(cached, descriptor, opener);
    });
    return h("div", { class: "attachment photo" }, opener, bar, status);
  }
  const button = h(
    "button",
    { type: "button", class: "secondary", "data-attachment": descriptor.blob },
    t("attachDownload", { name, size: humanSize(descriptor.size) }),
  );
  button.addEventListener("click", async () => {
    cached ??= await fetchFile();
    if (cached) download(name, cached, descriptor.mime);
  });
  return h("div", { class: "attachment file" }, button, bar, status);
}

// In the conversation screen, which is drawn again at every change: the composer of a
// room and the view of a received attachment are made once and moved into each new
// drawing, so that a preview, an upload or a download in progress survives it.

/** What the conversation screen gives: the device's token and its encrypted sending. */
export interface ConversationClient {
  readonly data: { token: string };
  sendAttachment(roomId: number, content: JsonObject, id: string): Promise<void>;
}

const composers = new Map<string, HTMLElement>();
const received = new Map<string, HTMLElement>();

/** The photo and file buttons of a room, with its preview and progress bar. */
export function roomAttachments(client: ConversationClient, roomId: number): HTMLElement {
  const key = `${client.data.token.slice(0, 8)}:${roomId}`;
  let composer = composers.get(key);
  if (!composer) {
    composer = attachmentComposer({
      api: new AttachmentApi(client.data.token),
      room: roomId,
      sendContent: (content, messageId) => client.sendAttachment(roomId, content as unknown as JsonObject, messageId),
    });
    composers.set(key, composer);
  }
  return composer;
}

/** A message's attachment: its thumbnail or download button, or why it cannot be shown. */
export function messageAttachment(value: unknown, token: string): HTMLElement {
  let descriptor: Descriptor;
  try {
    descriptor = checkDescriptor(value);
  } catch (error) {
    return h("p", { role: "alert" }, t("attachBadDescriptor", { reason: errorMessage(error) }));
  }
  let view = received.get(descriptor.blob);
  if (!view) {
    view = attachmentView(descriptor, new AttachmentApi(token));
    received.set(descriptor.blob, view);
  }
  return view;
}
