// The rooms list: each room with its name, its unread count and its last activity.
import { h } from "./dom";
import { t } from "../i18n";
import { header } from "./chrome";

export interface RoomSummary {
  id: number;
  name: string;
  unread: number;
  unreadCapped: boolean;
  lastActivity: string | null;
}

export interface RoomsActions {
  open(room: number): void;
  logout(): void;
  newConversation(): void;
  newCareTeam(): void;
  devices(): void;
}

function when(iso: string): string {
  return new Date(iso).toLocaleString(document.documentElement.lang, {
    dateStyle: "short",
    timeStyle: "short",
  });
}

export function roomsView(rooms: RoomSummary[], actions: RoomsActions, banner: Node | null): HTMLElement {
  const items = rooms.map((room) =>
    h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: "room",
          "data-room": room.id,
          onclick: () => actions.open(room.id),
        },
        h("span", { class: "room-name" }, room.name),
        room.lastActivity
          ? h("span", { class: "room-when" }, t("lastActivity", { when: when(room.lastActivity) }))
          : null,
        room.unread > 0
          ? h(
              "span",
              { class: "badge", "aria-label": t("unread", { count: room.unread }) },
              room.unreadCapped ? "999+" : String(room.unread),
            )
          : null,
      ),
    ),
  );
  return h(
    "section",
    { class: "screen rooms", "aria-labelledby": "screen-title" },
    header(t("roomsTitle"), null),
    banner,
    h(
      "nav",
      { class: "actions", "aria-label": t("roomsTitle") },
      h("button", { type: "button", id: "new-conversation", onclick: actions.newConversation }, t("newConversation")),
      h("button", { type: "button", id: "new-care-team", onclick: actions.newCareTeam }, t("newCareTeam")),
      h("button", { type: "button", id: "devices", onclick: actions.devices }, t("devices")),
      h("button", { type: "button", id: "logout", onclick: actions.logout }, t("logout")),
    ),
    rooms.length ? h("ul", { class: "room-list", id: "room-list" }, items) : h("p", { id: "room-list" }, t("noRooms")),
  );
}
