// The attachments test page's bundle (tests/web/test_attachment_vectors.py,
// tests/web/test_photos.py): the attachment vectors' runner, the module itself for tests
// that drive it directly in the browser, and its screen parts mounted on their own, the
// conversation's sending played by the test (it hands the content the page recorded to
// the Python SDK, which sends the encrypted message). Never shipped with the app.
import "../src/styles.css";
import * as attachments from "../src/attachments";
import { attachmentComposer, attachmentOf, attachmentView, type AttachmentContent } from "../src/ui/attachments";
import "./attachment_vectors";
import "./teleexpertise_vectors";

const sent: { content: AttachmentContent; messageId: string }[] = [];

const ui = {
  sent,
  mountComposer(token: string, room: number): void {
    const api = new attachments.AttachmentApi(token);
    const link = {
      api,
      room,
      sendContent: async (content: AttachmentContent, messageId: string) => {
        sent.push({ content, messageId });
      },
    };
    document.body.append(attachmentComposer(link));
  },
  mountView(token: string, content: { type?: unknown; attachment?: unknown }): void {
    const descriptor = attachmentOf(content);
    if (descriptor === null) throw new Error("not an attachment");
    const list = document.querySelector("#received") ?? document.body.appendChild(Object.assign(document.createElement("div"), { id: "received" }));
    list.append(attachmentView(descriptor, new attachments.AttachmentApi(token)));
  },
  /** SHA-256 (hex) of what an image element shows: the bytes behind its blob URL. */
  async imageSha256(selector: string): Promise<string> {
    const image = document.querySelector<HTMLImageElement>(selector);
    if (!image) throw new Error(`no ${selector}`);
    const data = new Uint8Array(await (await fetch(image.src)).arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  },
};

(globalThis as unknown as { relaisAttachments: unknown }).relaisAttachments = attachments;
(globalThis as unknown as { relaisAttachmentsUi: unknown }).relaisAttachmentsUi = ui;
