// The notification controls of a conversation (push/page.ts): turn notifications on for
// this browser, and mute or unmute the room on this device.
import type { RelaisClient } from "../client/client";
import { t } from "../i18n";
import { enablePush, mutedRooms, pushEnabled, setMuted } from "../push/page";
import { h } from "./dom";

interface Known {
  enabled: boolean;
  muted: Set<number>;
  error: string;
}

let known: Known | null = null;
let loading = false;

// The conversation is drawn again on every change of the client: the latest box is the
// one on screen, and it is filled again when what is known changes.
let latest: { box: HTMLElement; client: RelaisClient; roomId: number } | null = null;

function redraw(): void {
  if (latest) fill(latest.box, latest.client, latest.roomId);
}

function load(client: RelaisClient): void {
  if (known || loading) return;
  loading = true;
  void Promise.all([pushEnabled(), mutedRooms(client.api).catch(() => new Set<number>())])
    .then(([enabled, muted]) => {
      known = { enabled, muted, error: "" };
      redraw();
    })
    .finally(() => {
      loading = false;
    });
}

export function roomNotifications(client: RelaisClient, roomId: number): HTMLElement {
  const box = h("div", { class: "notifications", id: "notifications" });
  latest = { box, client, roomId };
  load(client);
  fill(box, client, roomId);
  return box;
}

function fill(box: HTMLElement, client: RelaisClient, roomId: number): void {
  box.replaceChildren();
  if (!known) return;
  const state = known;
  if (!state.enabled) {
    box.append(
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          id: "notify-enable",
          onclick: () =>
            void enablePush(client.api)
              .then(() => {
                state.enabled = true;
                state.error = "";
              })
              .catch(() => {
                state.error = t("notifyRefused");
              })
              .finally(redraw),
        },
        t("notifyEnable"),
      ),
    );
  }
  const muted = state.muted.has(roomId);
  box.append(
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "notify-mute",
        "aria-pressed": muted ? "true" : "false",
        onclick: () =>
          void setMuted(client.api, roomId, !muted)
            .then(() => {
              if (muted) state.muted.delete(roomId);
              else state.muted.add(roomId);
            })
            .finally(redraw),
      },
      muted ? t("notifyUnmute") : t("notifyMute"),
    ),
  );
  if (state.error) box.append(h("p", { role: "alert", class: "alert" }, state.error));
}

/** Forget what was loaded (logout: another practitioner may log in). */
export function forgetNotifications(): void {
  known = null;
  latest = null;
}
