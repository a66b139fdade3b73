// A conversation: its messages with their states, the composer, who is typing.
import type { RelaisClient } from "../client/client";
import type { ChatMessage } from "../client/model";
import { type MessageKey, t } from "../i18n";
import { alertsView } from "./alerts";
import { header } from "./chrome";
import { h } from "./dom";
import { messageAttachment, roomAttachments } from "./attachments";
import { roomNotifications } from "./notifications";
import { roomInfo } from "./roominfo";

const STATES: Record<ChatMessage["state"], MessageKey> = {
  pending: "statePending",
  sent: "stateSent",
  delivered: "stateDelivered",
  read: "stateRead",
  failed: "failed",
};

export interface ConversationActions {
  back(): void;
  send(text: string): void;
  typing(active: boolean): void;
  safety(nationalId: string): void;
}

export function connectionStatus(client: RelaisClient): HTMLElement {
  const state = client.connection;
  const label = state === "online" ? t("online") : state === "connecting" ? t("reconnecting") : t("offline");
  return h("p", { class: "status", id: "connection", "data-state": state, role: "status" }, label);
}

function time(ts: number): string {
  return new Date(ts).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
}

export function conversationView(client: RelaisClient, roomId: number, actions: ConversationActions, draft: string): HTMLElement {
  const room = client.room(roomId);
  const others = room ? [...room.state.members.keys()].filter((n) => n !== client.nationalId) : [];
  const typing = client.typing.get(roomId);
  const items = client.messages(roomId).map((m) =>
    h(
      "li",
      { class: m.own ? "message own" : "message", "data-seq": m.seq ?? "", "data-state": m.state },
      !m.own ? h("span", { class: "meta" }, client.nameOf(m.sender)) : null,
      h("span", { class: "text" }, m.text),
      m.attachment ? messageAttachment(m.attachment, client.data.token) : null,
      h(
        "span",
        { class: "meta" },
        time(m.ts),
        m.own ? ` · ${t(STATES[m.state])}` : "",
        m.flags.includes("reordered") ? ` · ${t("reordered")}` : "",
      ),
    ),
  );
  const input = h("input", {
    id: "composer",
    name: "message",
    "aria-label": t("messageLabel"),
    placeholder: t("messagePlaceholder"),
    autocomplete: "off",
    maxlength: 4000,
    value: draft,
    oninput: () => actions.typing(input.value.length > 0),
  });
  const form = h(
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
  const refused = room?.stored.compromised;
  const list = h("ol", { class: "messages", id: "messages", "aria-live": "polite" }, items);
  const view = h(
    "section",
    { class: "screen conversation", "aria-labelledby": "screen-title" },
    header(client.roomTitle(roomId), actions.back, "screen-title", others.length === 1 ? [h("button", { type: "button", id: "safety", class: "secondary", onclick: () => actions.safety(others[0]!) }, t("safetyNumber"))] : []),
    connectionStatus(client),
    roomNotifications(client, roomId),
    roomInfo(client, roomId),
    alertsView(client, roomId),
    refused ? h("p", { role: "alert", class: "alert" }, t("roomRefused", { reason: refused })) : null,
    list,
    typing && typing.until > Date.now() ? h("p", { class: "status" }, t("typing", { name: typing.name })) : null,
    roomAttachments(client, roomId),
    form,
  );
  queueMicrotask(() => {
    list.lastElementChild?.scrollIntoView({ block: "end" });
  });
  return view;
}
