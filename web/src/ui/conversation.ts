// A conversation: its messages with their states, the composer, who is typing.
//
// The screen is made once per opening and then updated in place: each message's row is
// built once and kept (keyed by its sender and id), rebuilt only when what it shows
// changes (its state, number, flags, text or the sender's name), and new rows go in
// with one DocumentFragment. A catch-up of a thousand messages therefore costs one row
// each, not a redrawing of the whole history at every page (docs/web.md, "Numbers").
import type { RelaisClient } from "../client/client";
import type { ChatMessage } from "../client/model";
import { language, type MessageKey, t } from "../i18n";
import { alertsView } from "./alerts";
import { header } from "./chrome";
import { h } from "./dom";
import { messageAttachment, roomAttachments } from "./attachments";
import { roomNotifications } from "./notifications";
import { roomInfo } from "./roominfo";
import { sessionBanner, type SessionActions } from "./session";

const STATES: Record<ChatMessage["state"], MessageKey> = {
  pending: "statePending",
  sent: "stateSent",
  delivered: "stateDelivered",
  read: "stateRead",
  failed: "failed",
};

/** How close to the end (in pixels) the reader must be for new messages to scroll. */
const FOLLOW_MARGIN = 120;

export interface ConversationActions {
  back(): void;
  send(text: string): void;
  typing(active: boolean): void;
  safety(nationalId: string): void;
  session: SessionActions;
}

export function connectionStatus(client: RelaisClient): HTMLElement {
  const state = client.connection;
  const label = state === "online" ? t("online") : state === "connecting" ? t("reconnecting") : t("offline");
  return h("p", { class: "status", id: "connection", "data-state": state, role: "status" }, label);
}

// One formatter per language: toLocaleTimeString makes a new one at every call, which
// was most of the time a long conversation took to draw.
let clock: { lang: string; format: Intl.DateTimeFormat } | null = null;

function time(ts: number): string {
  const lang = document.documentElement.lang;
  if (clock?.lang !== lang) clock = { lang, format: new Intl.DateTimeFormat(lang || undefined, { hour: "2-digit", minute: "2-digit" }) };
  return clock.format.format(ts);
}

interface Row {
  element: HTMLLIElement;
  shows: string;
}

export class ConversationScreen {
  readonly element: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly typingLine: HTMLParagraphElement;
  private readonly form: HTMLFormElement;
  private head: Node[] = [];
  private rows = new Map<string, Row>();
  private language = language();
  private drawn = false;

  constructor(
    private readonly client: RelaisClient,
    readonly roomId: number,
    private readonly actions: ConversationActions,
  ) {
    const input = h("input", {
      id: "composer",
      name: "message",
      "aria-label": t("messageLabel"),
      placeholder: t("messagePlaceholder"),
      autocomplete: "off",
      maxlength: 4000,
      oninput: () => actions.typing(input.value.length > 0),
    });
    this.form = h(
      "form",
      {
        class: "composer",
        onsubmit: (event: Event) => {
          event.preventDefault();
          const text = input.value.trim();
          if (text) actions.send(text);
          input.value = "";
          actions.typing(false);
        },
      },
      input,
      h("button", { type: "submit", id: "send" }, t("send")),
    );
    this.list = h("ol", { class: "messages", id: "messages", "aria-live": "polite" });
    this.typingLine = h("p", { class: "status", hidden: true });
    this.element = h("section", { class: "screen conversation", "aria-labelledby": "screen-title" }, this.list, this.typingLine, roomAttachments(client, roomId), this.form);
    this.update();
  }

  /** Bring the screen up to date with the client: the parts above the messages are made
   * again (they are small), the messages only where they changed. */
  update(): void {
    if (this.language !== language()) this.relabel();
    this.updateHead();
    const typing = this.client.typing.get(this.roomId);
    const typingNow = typing && typing.until > Date.now() ? t("typing", { name: typing.name }) : "";
    if (this.typingLine.textContent !== typingNow) this.typingLine.textContent = typingNow;
    this.typingLine.hidden = !typingNow;
    const following = !this.drawn || this.nearEnd();
    const added = this.updateMessages();
    if (following && added) {
      queueMicrotask(() => this.list.lastElementChild?.scrollIntoView({ block: "end" }));
    }
    this.drawn = true;
  }

  private relabel(): void {
    this.language = language();
    for (const row of this.rows.values()) row.element.remove();
    this.rows.clear();
    const input = this.form.querySelector<HTMLInputElement>("#composer")!;
    input.setAttribute("aria-label", t("messageLabel"));
    input.placeholder = t("messagePlaceholder");
    this.form.querySelector("#send")!.textContent = t("send");
  }

  private updateHead(): void {
    const client = this.client;
    const room = client.room(this.roomId);
    const others = room ? [...room.state.members.keys()].filter((n) => n !== client.nationalId) : [];
    const refused = room?.stored.compromised;
    // A device removed from its account sends nothing more (client/session.ts).
    this.form.hidden = client.session === "removed";
    const next = [
      header(client.roomTitle(this.roomId), this.actions.back, "screen-title", others.length === 1 ? [h("button", { type: "button", id: "safety", class: "secondary", onclick: () => this.actions.safety(others[0]!) }, t("safetyNumber"))] : []),
      connectionStatus(client),
      sessionBanner(client, this.actions.session),
      roomNotifications(client, this.roomId),
      roomInfo(client, this.roomId),
      alertsView(client, this.roomId),
      refused ? h("p", { role: "alert", class: "alert" }, t("roomRefused", { reason: refused })) : null,
    ].filter((node): node is HTMLElement => node !== null);
    // An information panel the reader opened stays open.
    const opened = this.head.some((node) => node instanceof HTMLDetailsElement && node.open);
    for (const node of next) if (node instanceof HTMLDetailsElement && opened) node.open = true;
    for (const node of this.head) this.element.removeChild(node);
    this.list.before(...next);
    this.head = next;
  }

  private nearEnd(): boolean {
    const scroller = document.scrollingElement;
    if (!scroller || !this.element.isConnected) return true;
    return scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - FOLLOW_MARGIN;
  }

  /** The list's rows made to match the messages, in order; true if rows were added. */
  private updateMessages(): boolean {
    const client = this.client;
    const messages = client.messages(this.roomId);
    const keys = new Array<string>(messages.length);
    const used = new Map<string, number>();
    messages.forEach((m, i) => {
      // A sender's id names one message; a repeat (never from an honest server) still
      // gets its own row.
      const base = `${m.sender}/${m.senderDevice}/${m.id}`;
      const count = used.get(base) ?? 0;
      used.set(base, count + 1);
      keys[i] = count ? `${base}#${count}` : base;
    });
    const wanted = new Set(keys);
    for (const [key, row] of this.rows) {
      if (!wanted.has(key)) {
        row.element.remove();
        this.rows.delete(key);
      }
    }
    let added = false;
    let cursor = this.list.firstElementChild;
    const tail = document.createDocumentFragment();
    messages.forEach((message, i) => {
      const key = keys[i]!;
      const shows = this.shows(message);
      let row = this.rows.get(key);
      if (row && row.shows !== shows) {
        const element = this.row(message);
        if (cursor === row.element) cursor = element;
        row.element.replaceWith(element);
        row = { element, shows };
        this.rows.set(key, row);
      }
      if (!row) {
        row = { element: this.row(message), shows };
        this.rows.set(key, row);
        added = true;
      }
      if (cursor === row.element) {
        cursor = cursor.nextElementSibling;
      } else if (cursor === null) {
        tail.append(row.element);
      } else {
        this.list.insertBefore(row.element, cursor);
      }
    });
    this.list.append(tail);
    return added;
  }

  /** What a message's row shows that can change once it is drawn. */
  private shows(m: ChatMessage): string {
    return `${m.seq ?? ""}|${m.state}|${m.flags.join(",")}|${m.own ? "" : this.client.nameOf(m.sender)}|${m.text}`;
  }

  private row(m: ChatMessage): HTMLLIElement {
    return h(
      "li",
      { class: m.own ? "message own" : "message", "data-seq": m.seq ?? "", "data-state": m.state },
      !m.own ? h("span", { class: "meta" }, this.client.nameOf(m.sender)) : null,
      h("span", { class: "text" }, m.text),
      m.attachment ? messageAttachment(m.attachment, this.client.data.token) : null,
      h("span", { class: "meta" }, time(m.ts), m.own ? ` · ${t(STATES[m.state])}` : "", m.flags.includes("reordered") ? ` · ${t("reordered")}` : ""),
    );
  }
}
